"""Schema migrations of the read models, with Alembic.

The tables, indexes and analytics views are made and changed by the revisions in
``projections/migrations/versions``; ``migrate`` applies them up to the newest (head). The
services call it at start (the API and the projector), and so does ``jobledger migrate``.

Two processes may start at once (``jobledger run`` starts the API and the projector
together; a deployment starts them wherever). Either may migrate, and racing is safe: the
upgrade runs in one transaction that first takes a lock held until it commits (SQLite's
write lock through ``BEGIN IMMEDIATE``, PostgreSQL's transaction-scoped advisory lock), so
the second waits, then reads the version the first committed and has nothing to do. One
transaction also means that a migration that fails or is killed half-way leaves the
database as it was: SQLite and PostgreSQL both roll back DDL. A database already at head
is recognised by one read of ``alembic_version``, without the lock, so a restart does not
queue behind the projector's writes.

A database made by a build before migrations has the tables but no ``alembic_version``:
``migrate`` refuses it (``SchemaError``) rather than guess which of its columns and
indexes it lacks. The read models hold nothing the event log does not, so the answer is
a rebuild (``jobledger migrate --rebuild``, then the projector replays the log).
"""

import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.analytics import drop_views
from projections.tables import metadata

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
# PostgreSQL's advisory locks are named by a 64-bit number: this one is jobledger's.
PG_LOCK_KEY = zlib.crc32(b"jobledger.projections.migrate")
LOCK_WAIT_SECS = 30  # as long as SQLite's busy_timeout (projections.db)


class SchemaError(RuntimeError):
    """The database is in a state migrations cannot take forward."""


def alembic_config() -> Config:
    """The configuration that an alembic.ini would hold, built in code."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Revision files named by their number: 0001_whole_schema.py, 0002_....py
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    revision = scripts().get_current_head()
    assert revision is not None, "projections/migrations/versions has no revision"
    return revision


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None: no ``alembic_version``, or it is empty)."""
    return MigrationContext.configure(conn).get_current_revision()


async def revision_of(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(current_revision)


async def migrate(engine: AsyncEngine) -> tuple[str | None, str]:
    """Bring the database to head. Returns the revision it was at and the one it is at."""
    target = head()
    before = await revision_of(engine)
    if before == target:
        return before, target
    async with locked(engine) as conn:
        before = await conn.run_sync(_upgradable)
        if before != target:
            await conn.run_sync(_run, command.upgrade, target)
    return before, target


async def downgrade(engine: AsyncEngine, target: str = "base") -> None:
    """Undo revisions down to ``target`` ("base": none left). For tests and for a rollback
    by hand: the services never downgrade."""
    async with locked(engine) as conn:
        await conn.run_sync(_run, command.downgrade, target)


async def rebuild_schema(engine: AsyncEngine) -> str:
    """Drop the read models (whatever build made them) and migrate the empty database to
    head, in one transaction under the lock: a service starting meanwhile waits and then
    finds the new schema, never a half-dropped one. The projector then finds no stored
    offsets and replays the events topic from offset 0."""
    target = head()
    async with locked(engine) as conn:
        await conn.run_sync(_drop_everything)
        await conn.run_sync(_run, command.upgrade, target)
    return target


def _drop_everything(conn: Connection) -> None:
    drop_views(conn)
    metadata.drop_all(conn)
    conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))


@asynccontextmanager
async def locked(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that holds the migration lock from its start to its commit, and in
    which DDL is transactional on SQLite too (see _lock): what every schema change runs in."""
    async with engine.begin() as conn:
        await _lock(conn)
        yield conn


async def _lock(conn: AsyncConnection) -> None:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # SQLAlchemy's SQLite drivers leave BEGIN to the sqlite3 module, which emits none
        # before DDL: begun here, the whole upgrade is one transaction, and IMMEDIATE
        # takes the write lock now (a racer waits its busy_timeout), not at the first write.
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        # Bounded, as SQLite's busy_timeout bounds the wait there: a racer behind a stuck
        # migration, or a DDL statement queued behind a long query, fails instead of
        # hanging the service's start (and is restarted).
        await conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT_SECS}s'")
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def _upgradable(conn: Connection) -> str | None:
    """The database's revision, read under the lock; refuses what cannot be upgraded."""
    revision = current_revision(conn)
    if revision is None:
        found = set(inspect(conn).get_table_names()) & set(metadata.tables)
        if found:
            raise SchemaError(
                f"the read models in {conn.engine.url!r} were made by a jobledger build "
                f"from before schema migrations ({len(found)} of its tables but no "
                f"{VERSION_TABLE} table), so which columns and indexes they lack is unknown."
                " They hold nothing the event log does not: stop the services, run "
                "`jobledger migrate --rebuild` (drops them; the projector then replays the "
                "log), or delete the SQLite file.")
    elif revision not in {script.revision for script in scripts().walk_revisions()}:
        raise SchemaError(
            f"the read models in {conn.engine.url!r} are at schema revision {revision}, "
            "which this build does not have: a newer build migrated them. Run that build, "
            "or `jobledger migrate --rebuild` with this one.")
    return revision


def _run(conn: Connection, step: Callable[..., Any], target: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    step(config, target)
