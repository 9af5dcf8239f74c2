"""The migrations against the table definitions.

Applied to an empty database, the revisions give exactly the schema that
``metadata.create_all`` and ``create_views`` give (what the unit tests build with
``create_schema``): Alembic's autogenerate comparison finds nothing to do, and the two
databases reflect the same tables, columns, keys, indexes (partial ones with their
predicates) and views. And migrating is safe to repeat, to race, to undo, and to fail.

Every test takes its databases from ``new_database``: one entry of BACKENDS per store, on
the backends of ``store`` (tests/conftest.py's ``store_server``), so each runs on SQLite and
on the session's PostgreSQL server in every run; a server that cannot be had fails them, as
it fails the store tests.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.analytics import VIEWS
from projections.db import create_schema, make_engine
from projections.migrate import (
    VERSION_TABLE,
    SchemaError,
    downgrade,
    head,
    locked,
    migrate,
    rebuild_schema,
    revision_of,
    scripts,
)
from projections.tables import metadata
from tests.stores import asyncpg_url

T = TypeVar("T")
NewDatabase = Callable[[str], Awaitable[str]]  # a name -> the URL of a new, empty database


async def _sqlite(tmp_path: Path, server: str | None) -> AsyncIterator[NewDatabase]:
    async def new(name: str) -> str:
        return f"sqlite+aiosqlite:///{tmp_path / name}.db"
    yield new


async def _postgresql(tmp_path: Path, server_url: str | None) -> AsyncIterator[NewDatabase]:
    """Databases of this test's own on ``server_url`` (empty: not the store tests' template,
    which has the schema), under a prefix no other test shares; dropped afterwards."""
    assert server_url is not None
    server = asyncpg_url(server_url)
    prefix = f"jl_migrations_{uuid.uuid4().hex[:8]}"
    made: list[str] = []
    admin = make_engine(server.render_as_string(hide_password=False))

    async def execute(sql: str) -> None:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))

    async def new(name: str) -> str:
        made.append(f"{prefix}_{name}")
        await execute(f'CREATE DATABASE "{made[-1]}"')
        return server.set(database=made[-1]).render_as_string(hide_password=False)

    try:
        yield new
    finally:
        for database in made:
            await execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.dispose()


BACKENDS = {"sqlite": _sqlite, "postgresql": _postgresql}


@pytest.fixture
async def new_database(store_server: str | None,
                       tmp_path: Path) -> AsyncIterator[NewDatabase]:
    """Once per backend of ``store``: SQLite (``store_server`` None), then the session's
    PostgreSQL server (``postgresql_url``: started if need be, an error if it cannot be)."""
    backend = "sqlite" if store_server is None else "postgresql"
    async for new in BACKENDS[backend](tmp_path, store_server):
        yield new


async def on(engine: AsyncEngine, read: Callable[[Connection], T]) -> T:
    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def with_engine(url: str, use: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    engine = make_engine(url)
    try:
        return await use(engine)
    finally:
        await engine.dispose()


def _text(value: Any) -> str:
    return str(getattr(value, "text", value))


def schema_of(conn: Connection) -> dict[str, Any]:
    """Everything the database says about its tables and views, in comparable form."""
    found = inspect(conn)
    tables = {}
    for name in sorted(set(found.get_table_names()) - {VERSION_TABLE}):
        tables[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                        for c in found.get_columns(name)],
            "primary key": found.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]),
                 sorted((k, _text(v)) for k, v in i.get("dialect_options", {}).items()))
                for i in found.get_indexes(name)),
            "unique": sorted((u["name"] or "", tuple(u["column_names"]))
                             for u in found.get_unique_constraints(name)),
            "foreign keys": found.get_foreign_keys(name),
        }
    views = {name: ([(c["name"], str(c["type"])) for c in found.get_columns(name)],
                    found.get_view_definition(name))
             for name in sorted(found.get_view_names())}
    return {"tables": tables, "views": views}


def differences(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


async def test_the_revisions_give_the_schema_of_the_table_definitions(
        new_database: NewDatabase) -> None:
    migrated = make_engine(await new_database("migrated"))
    created = make_engine(await new_database("created"))
    try:
        assert await migrate(migrated) == (None, head())
        await create_schema(created)
        assert await on(migrated, differences) == []
        by_revisions, by_metadata = await on(migrated, schema_of), await on(created, schema_of)
        assert set(by_revisions["tables"]) == set(metadata.tables)
        assert sorted(by_revisions["views"]) == sorted(VIEWS)
        # Partial indexes carry their predicate: the comparison above sees it.
        [parent] = [i for i in by_revisions["tables"]["runs"]["indexes"]
                    if i[0] == "ix_runs_parent"]
        assert "parent_run_id IS NOT NULL" in str(parent[3]).replace('"', "")
        assert by_revisions == by_metadata
    finally:
        await migrated.dispose()
        await created.dispose()


async def test_migrating_again_changes_nothing(new_database: NewDatabase) -> None:
    async def twice(engine: AsyncEngine) -> None:
        await migrate(engine)
        before = await on(engine, schema_of)
        assert await migrate(engine) == (head(), head())
        assert await on(engine, schema_of) == before
    await with_engine(await new_database("twice"), twice)


async def test_services_starting_together_migrate_once(new_database: NewDatabase) -> None:
    """Four engines (four services) migrate the same empty database at once: the lock
    lets one do it; the others wait, then find it at head."""
    url = await new_database("race")
    engines = [make_engine(url) for _ in range(4)]
    try:
        outcomes = await asyncio.gather(*(migrate(engine) for engine in engines))
        done = sorted(outcomes, key=lambda outcome: outcome[0] or "")
        assert done == [(None, head())] + [(head(), head())] * 3
        assert await on(engines[0], differences) == []
    finally:
        for engine in engines:
            await engine.dispose()


async def test_upgrade_then_downgrade_to_base_leaves_an_empty_database(
        new_database: NewDatabase) -> None:
    async def there_and_back(engine: AsyncEngine) -> None:
        await migrate(engine)
        await downgrade(engine, "base")
        left = await on(engine, schema_of)
        assert left == {"tables": {}, "views": {}}
        assert await revision_of(engine) is None  # alembic_version stays, empty
    await with_engine(await new_database("down"), there_and_back)


async def test_a_migration_that_fails_leaves_the_database_as_it_was(
        new_database: NewDatabase) -> None:
    """A view already named v1_runs makes revision 0001 fail at its end, after it made
    every table: one transaction, so none of them is left behind."""
    async def failing(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE VIEW v1_runs AS SELECT 1 AS x"))
        with pytest.raises(Exception, match="v1_runs"):
            await migrate(engine)
        assert (await on(engine, schema_of))["tables"] == {}
        assert await revision_of(engine) is None
    await with_engine(await new_database("failing"), failing)


async def test_a_database_from_before_migrations_is_refused_then_rebuilt(
        new_database: NewDatabase) -> None:
    async def old(engine: AsyncEngine) -> None:
        await create_schema(engine)  # what an older build made: tables, no alembic_version
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO job_positions VALUES ('j', 3)"))
        with pytest.raises(SchemaError, match="jobledger migrate --rebuild"):
            await migrate(engine)
        assert await rebuild_schema(engine) == head()
        assert await revision_of(engine) == head()
        assert await on(engine, differences) == []
        async with engine.connect() as conn:  # emptied: the projector replays the log
            assert (await conn.execute(text("SELECT COUNT(*) FROM job_positions"))).scalar() == 0
    await with_engine(await new_database("old"), old)


async def test_a_database_a_newer_build_migrated_is_refused(new_database: NewDatabase) -> None:
    async def newer(engine: AsyncEngine) -> None:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
        with pytest.raises(SchemaError, match="9999"):
            await migrate(engine)
    await with_engine(await new_database("newer"), newer)


def test_the_revisions_are_one_numbered_line() -> None:
    """0001, 0002, ... each revising the one before, in files named by their number: two
    branches that each add a 0002 show up here at merge (two heads), not in production."""
    chain = list(reversed(list(scripts().walk_revisions())))
    assert scripts().get_heads() == [chain[-1].revision]
    for number, script in enumerate(chain, start=1):
        assert script.revision == f"{number:04d}"
        assert script.down_revision == (None if number == 1 else f"{number - 1:04d}")
        assert script.path is not None and Path(script.path).name.startswith(script.revision)


async def test_a_new_revision_is_written_by_autogenerate_and_applies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's way to add a revision, on a copy of the migrations: a table added to
    the definitions comes out as the revision after the head, numbered and chained, and
    applying it leaves nothing to compare."""
    import shutil

    from sqlalchemy import Column, String, Table

    import projections.migrate
    from projections.migrations.__main__ import new_revision

    copy = tmp_path / "migrations"
    shutil.copytree(projections.migrate.MIGRATIONS, copy)
    monkeypatch.setattr(projections.migrate, "MIGRATIONS", copy)
    head = int(scripts().get_current_head() or 0)
    new, old = f"{head + 1:04d}", f"{head:04d}"
    added = Table("scratch_things", metadata, Column("id", String(64), primary_key=True))
    try:
        path = Path(await new_revision("scratch things"))
        assert path.parent == copy / "versions" and path.name == f"{new}_scratch_things.py"
        written = await asyncio.to_thread(path.read_text)
        assert f"down_revision = '{old}'" in written or f'down_revision = "{old}"' in written
        assert "create_table" in written and "scratch_things" in written
        test_the_revisions_are_one_numbered_line()
        url = f"sqlite+aiosqlite:///{tmp_path / 'next.db'}"
        assert await with_engine(url, migrate) == (None, new)
        engine = make_engine(url)
        try:
            assert await on(engine, differences) == []
        finally:
            await engine.dispose()
    finally:
        metadata.remove(added)


def test_jobledger_migrate_migrates_and_checks(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from services.cli.main import main

    monkeypatch.delenv("JOBLEDGER_DATABASE_URL", raising=False)
    home = ["--home", str(tmp_path)]
    assert main(["migrate", "--check", *home]) == 1
    assert main(["migrate", *home]) == 0
    assert main(["migrate", "--check", *home]) == 0
    out = capsys.readouterr().out
    assert f"migrated from revision none (empty) to {head()}" in out
    assert (tmp_path / "jobledger.db").exists()


async def test_a_table_the_views_read_can_be_copied_with_the_views_set_aside(
        new_database: NewDatabase) -> None:
    """A batch operation that copies ``runs`` (as SQLite's drop or alter column does)
    fails while the views name it, and works inside views_set_aside, which leaves the
    views as they were."""
    from alembic import op
    from alembic.operations import Operations

    from projections.migrations.helpers import views_set_aside

    def copy_runs(conn: Connection, set_aside: bool) -> None:
        with Operations.context(MigrationContext.configure(conn)):
            with views_set_aside() if set_aside else contextlib.nullcontext():
                with op.batch_alter_table("runs", recreate="always"):
                    pass  # no change: the copy alone is what the views are in the way of

    async def copy(engine: AsyncEngine) -> None:
        await migrate(engine)
        before = await on(engine, schema_of)
        if engine.dialect.name == "sqlite":
            with pytest.raises(Exception, match="v1_runs"):
                async with locked(engine) as conn:
                    await conn.run_sync(copy_runs, False)
        async with locked(engine) as conn:
            await conn.run_sync(copy_runs, True)
        assert await on(engine, schema_of) == before
    await with_engine(await new_database("copy"), copy)


async def test_revision_0002_moves_every_label_into_its_new_key_and_back(
        new_database: NewDatabase) -> None:
    """Labels projected at head, taken down to 0001 (no created_at in the key) and up
    again: the same rows, each with its run's created_at."""
    from events import Envelope, encode_event
    from events.types import JobCreated, RunTriggered
    from projections.projector import apply_batch
    from tests.unit.domain_support import at, spec

    def record(seq: int, run_id: str | None, event: Any) -> tuple[int, int, bytes]:
        env = Envelope(event_id=f"e{seq}", type=event.TYPE, version=event.VERSION,
                       project_id="p", job_id="j", seq=seq, occurred_at=at(seq),
                       command_id=f"c{seq}", run_id=run_id)
        return 0, seq, encode_event(env, event)

    records = [record(1, None, JobCreated(spec=spec(slug="j")))]
    records += [record(i + 2, f"r{i}", RunTriggered(
        payload=None, tags={"team": f"t{i % 2}"}, metadata={"region": "eu"}))
        for i in range(5)]
    query = text("SELECT project_id, kind, key, value_digest, run_id, value FROM run_labels "
                 "ORDER BY run_id, kind, key")

    async def down_and_up(engine: AsyncEngine) -> None:
        await migrate(engine)
        async with engine.begin() as conn:
            await apply_batch(conn, "t.events", records)
        async with engine.connect() as conn:
            before = (await conn.execute(query)).all()
        assert len(before) == 10
        await downgrade(engine, "0001")
        async with engine.connect() as conn:
            assert (await conn.execute(query)).all() == before
        await migrate(engine)
        async with engine.connect() as conn:
            assert (await conn.execute(query)).all() == before
            created = (await conn.execute(text(
                "SELECT l.run_id FROM run_labels l JOIN runs r ON r.id = l.run_id "
                "AND r.created_at = l.created_at"))).all()
        assert len(created) == 10
        assert await on(engine, differences) == []
    await with_engine(await new_database("labels"), down_and_up)
