"""``python -m projections.migrations new "what changed"``: write the next revision.

Autogenerate compares ``projections.tables`` with a database at the current head: a
scratch SQLite file that the existing revisions are applied to (or the database ``--url``
names, which must be at head). The new file is ``versions/<number>_<slug>.py``, numbered
one past the head. Read it and tidy it before committing: autogenerate sees tables,
columns and indexes, but not views, data moves or renames (it writes a drop and an add).
``tests/unit/test_migrations.py`` then checks that the revisions give the tables' schema.
"""

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import Connection

from projections.db import make_engine
from projections.migrate import alembic_config, current_revision, migrate, scripts


def next_revision_id() -> str:
    return f"{len(list(scripts().walk_revisions())) + 1:04d}"


def _autogenerate(conn: Connection, message: str) -> str:
    config = alembic_config()
    config.attributes["connection"] = conn
    script = command.revision(config, message=message, autogenerate=True,
                              rev_id=next_revision_id())
    assert script is not None and not isinstance(script, list)
    return script.path


async def new_revision(message: str, url: str | None = None) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(url or f"sqlite+aiosqlite:///{Path(scratch) / 'head.db'}")
        try:
            if scripts().get_current_head() is not None:
                if url is None:
                    await migrate(engine)
                async with engine.connect() as conn:
                    at = await conn.run_sync(current_revision)
                if at != scripts().get_current_head():
                    raise SystemExit(f"{url} is at {at}, not at head: migrate it first")
            async with engine.begin() as conn:
                return await conn.run_sync(_autogenerate, message)
        finally:
            await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m projections.migrations",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="write the next revision by autogenerate")
    new.add_argument("message", help='what the revision changes, e.g. "runs.purge_at"')
    new.add_argument("--url", help="compare against this database (at head) instead of "
                     "a scratch SQLite file, e.g. to see PostgreSQL's view of a change")
    args = parser.parse_args(argv)
    path = asyncio.run(new_revision(args.message, args.url))
    print(f"wrote {path}: read it, tidy it, and run tests/unit/test_migrations.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
