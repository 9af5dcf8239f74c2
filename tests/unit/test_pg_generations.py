"""Generations of a PostgreSQL store (a schema each, the pointer in a one-row table), on
the session's real PostgreSQL: what each generation's URL opens, prepare, switch, remove,
the rebuild lock, and LiveStore following a switch."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.db import make_engine
from projections.generations import Generation, Unsupported, generations_for
from projections.live_store import LiveStore
from projections.migrate import migrate
from projections.pg_generations import POINTER, PgGenerations
from projections.tables import job_positions
from tests.stores import empty_database


@pytest.fixture
async def database(postgresql_url: str) -> AsyncIterator[str]:
    """The URL of an empty database of the test's own."""
    async with empty_database(postgresql_url, "jl_gen") as url:
        yield url


@pytest.fixture
async def gens(database: str) -> AsyncIterator[PgGenerations]:
    made = generations_for(database)
    assert isinstance(made, PgGenerations)
    yield made
    await made.close()


async def scalar(engine: AsyncEngine, sql: str) -> object:
    async with engine.connect() as conn:
        return await conn.scalar(text(sql))


async def relations(engine: AsyncEngine, schema: str) -> set[str]:
    """The tables and views in ``schema``."""
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind IN ('r', 'v')"), {"s": schema})
        return set(rows.scalars())


async def filled(generation: Generation, job_id: str) -> None:
    """What a rebuild does to a generation, in short: the schema, and a row."""
    engine = make_engine(generation.url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(insert(job_positions).values(job_id=job_id, last_seq=1))
    finally:
        await engine.dispose()


async def test_without_a_pointer_the_base_schema_is_live(database: str,
                                                         gens: PgGenerations) -> None:
    live = await gens.live()
    assert live == Generation("public", database)  # the configured URL, untouched


async def test_each_generation_is_a_schema_of_its_own(database: str,
                                                      gens: PgGenerations) -> None:
    old = await gens.live()
    await filled(old, "old")
    async with gens.lock():
        new = await gens.prepare()
        assert new.name == "jobledger_g2"
        assert make_url(new.url).query["search_path"] == "jobledger_g2"
        await filled(new, "new")
        # Alembic's version table and the analytics views are the generation's own.
        made = await relations(gens.engine, "jobledger_g2")
        assert {"alembic_version", "runs", "job_positions", "v1_runs"} <= made
        assert made | {POINTER} == await relations(gens.engine, "public")  # + pointer
        await gens.switch(new)
    assert await gens.live() == new
    assert await scalar(gens.engine, f"SELECT live FROM public.{POINTER}") == "jobledger_g2"
    engine = make_engine(new.url)
    async with engine.connect() as conn:
        assert (await conn.execute(select(job_positions.c.job_id))).all() == [("new",)]
    await engine.dispose()
    with pytest.raises(ValueError, match="is live"):
        await gens.remove(new)
    # Generation 1 is the base schema: its read models go, the pointer stays.
    await gens.remove(old)
    assert await relations(gens.engine, "public") == {POINTER}
    assert await gens.live() == new


async def test_prepare_drops_leftovers_and_never_reuses_a_number(
        gens: PgGenerations) -> None:
    await filled(await gens.live(), "one")
    second = await gens.prepare()
    await filled(second, "two")
    await gens.switch(second)
    # An interrupted rebuild's schema, and generation 1 whose removal never ran.
    async with gens.engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA jobledger_g3"))
        await conn.execute(text("CREATE TABLE jobledger_g3.half (x int)"))
    third = await gens.prepare()
    assert third.name == "jobledger_g4"
    assert await gens.existing() == [2, 4]
    assert await relations(gens.engine, "public") == {POINTER}
    assert "job_positions" in await relations(gens.engine, "jobledger_g2")  # live: kept
    await gens.remove(third)
    assert await gens.existing() == [2]


async def test_switch_refuses_what_is_not_a_generation(gens: PgGenerations,
                                                       database: str) -> None:
    with pytest.raises(ValueError, match="not a generation"):
        await gens.switch(Generation("elsewhere", database))
    with pytest.raises(ValueError, match="no schema"):
        await gens.switch(Generation("jobledger_g9", database))
    assert (await gens.live()).name == "public"


async def test_a_bad_pointer_is_refused(gens: PgGenerations) -> None:
    await gens.switch(await gens.prepare())
    async with gens.engine.begin() as conn:
        await conn.execute(text(f"UPDATE {POINTER} SET live = 'pg_catalog'"))
    with pytest.raises(ValueError, match="not a generation"):
        await gens.live()


async def test_one_rebuild_at_a_time(database: str, gens: PgGenerations) -> None:
    other = PgGenerations(database)
    try:
        async with gens.lock():
            with pytest.raises(Unsupported, match="another rebuild"):
                async with other.lock():
                    pass
        async with other.lock():
            pass
    finally:
        await other.close()


async def test_a_base_schema_other_than_public(database: str) -> None:
    engine = make_engine(database)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA app"))
    await engine.dispose()
    gens = PgGenerations(f"{database}?search_path=app")
    try:
        assert (await gens.live()).name == "app"
        new = await gens.prepare()
        assert new.name == "jobledger_app_g2"
        await filled(new, "x")
        await gens.switch(new)
        assert await scalar(gens.engine, f"SELECT live FROM app.{POINTER}") == new.name
        assert await relations(gens.engine, "public") == set()  # nothing of ours there
    finally:
        await gens.close()


async def test_live_store_follows_a_switch(database: str, gens: PgGenerations) -> None:
    store = LiveStore(database, check_secs=0.0)
    try:
        engine = await store.open()
        async with engine.begin() as conn:
            await conn.execute(insert(job_positions).values(job_id="old", last_seq=1))
        assert not await store.switched()
        new = await gens.prepare()
        await filled(new, "new")
        await gens.switch(new)
        assert await store.switched()
        assert store.generation == new
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(job_positions.c.job_id))).all() == [("new",)]
        assert not await store.switched()
    finally:
        await store.close()


async def test_a_failed_rebuild_drops_its_schema(database: str, gens: PgGenerations,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from services.config import Settings
    from services.projector import rebuild as rebuild_module

    await filled(await gens.live(), "live")

    async def broken(settings: Settings, old: Generation, new: Generation,
                     out: object) -> None:
        await filled(new, "half")
        raise RuntimeError("the broker went away")

    monkeypatch.setattr(rebuild_module, "_replay", broken)
    with pytest.raises(RuntimeError, match="broker"):
        await rebuild_module.rebuild(Settings(database_url=database), out=lambda line: None)
    assert await gens.existing() == []
    assert (await gens.live()).name == "public"
    assert "job_positions" in await relations(gens.engine, "public")
