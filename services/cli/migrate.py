"""``jobledger migrate``: bring the read models' schema to this build's newest revision.

The API and the projector do the same at start (projections.migrate), so this is needed
only to migrate ahead of a deployment, to check (``--check``), or to rebuild a database
that an older build made (``--rebuild``).
"""

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from projections.db import make_engine
from projections.generations import live_url
from projections.migrate import SchemaError, head, migrate, rebuild_schema, revision_of
from services import eventloop


def database_url(home: Path, env: Mapping[str, str]) -> str:
    """JOBLEDGER_DATABASE_URL, or the SQLite file ``jobledger run`` keeps under ``home``."""
    return env.get("JOBLEDGER_DATABASE_URL") or f"sqlite+aiosqlite:///{home}/jobledger.db"


async def apply(configured: str, rebuild: bool = False, check: bool = False) -> int:
    """What ``jobledger migrate`` does to the live generation of the store ``configured``
    names (after a rebuild, `jobledger projections rebuild`, the read models live in a
    sibling file or another schema); prints one line and returns the exit status."""
    shown = make_url(configured).render_as_string(hide_password=True)
    try:
        url = await live_url(configured)
    except (OSError, DBAPIError, ValueError) as exc:  # unreachable, or a bad pointer
        print(f"jobledger: cannot find the live read models at {shown}: {exc}", flush=True)
        return 2
    shown = make_url(url).render_as_string(hide_password=True)
    engine = make_engine(url)
    try:
        if check:
            at, target = await revision_of(engine), head()
            print(f"jobledger: read models at {shown}: revision {at or 'none'}, "
                  f"this build's head {target}")
            return 0 if at == target else 1
        if rebuild:
            print(f"jobledger: read models at {shown} dropped and made anew at revision "
                  f"{await rebuild_schema(engine)}; the projector replays the events topic "
                  "from its start", flush=True)
            return 0
        before, after = await migrate(engine)
    except SchemaError as exc:
        print(f"jobledger: {exc}", flush=True)
        return 2
    except (OSError, DBAPIError) as exc:  # the database cannot be reached or opened
        print(f"jobledger: cannot migrate the read models at {shown}: {exc}", flush=True)
        return 2
    finally:
        await engine.dispose()
    if before == after:
        print(f"jobledger: read models at {shown} already at revision {after}")
    else:
        print(f"jobledger: read models at {shown} migrated from revision "
              f"{before or 'none (empty)'} to {after}")
    return 0


def migrate_command(args: argparse.Namespace) -> int:
    url = database_url(Path(args.home).resolve(), os.environ)
    return eventloop.run(apply(url, rebuild=args.rebuild, check=args.check))


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser("migrate", help="bring the read models' schema to this build's "
                            "revision (the services also do it at start)")
    parser.add_argument("--home", default=".jobledger",
                        help="state directory (its jobledger.db, unless "
                        "JOBLEDGER_DATABASE_URL names a database)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--check", action="store_true",
                      help="only say which revision the database is at; exit 1 if behind")
    what.add_argument("--rebuild", action="store_true",
                      help="drop the read models and make them anew (for a database from "
                      "a build before migrations); the projector then replays the log")
    parser.set_defaults(func=migrate_command)
