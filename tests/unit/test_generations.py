"""Generations of the SQLite store (the pointer, new places, the switch, removal) and the
pure part of a rebuild (lag, catching up, the progress line), without Kafka."""

from pathlib import Path

import pytest
from sqlalchemy import insert, select

from projections.db import create_schema, make_engine
from projections.generations import (
    FixedStore,
    SqliteGenerations,
    Unsupported,
    generation_file,
    generation_number,
    generations_for,
)
from projections.live_store import LiveStore
from projections.rebuild_progress import Progress, caught_up, events_behind
from projections.tables import job_positions


def test_generation_file_names_round_trip(tmp_path: Path) -> None:
    base = tmp_path / "jobledger.db"
    assert generation_file(base, 1) == base
    assert generation_file(base, 12).name == "jobledger.g12.db"
    for number in (1, 2, 12):
        assert generation_number(base, generation_file(base, number).name) == number
    for other in ("jobledger.db-wal", "jobledger.g2.db-shm", "jobledger.gx.db",
                  "other.g2.db", "jobledger.db.current"):
        assert generation_number(base, other) is None


async def test_without_a_pointer_the_configured_file_is_live(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/jobledger.db?timeout=5"
    gens = SqliteGenerations(url)
    assert (await gens.live()).url == url
    assert (await gens.live()).name == "jobledger.db"


async def test_prepare_switch_remove(tmp_path: Path) -> None:
    folder = tmp_path
    gens = SqliteGenerations(f"sqlite+aiosqlite:///{folder}/jobledger.db")
    (folder / "jobledger.db").write_text("old")
    new = await gens.prepare()
    assert new.name == "jobledger.g2.db" and new.url.endswith(f"{folder}/jobledger.g2.db")
    (folder / new.name).write_text("new")
    (folder / (new.name + "-wal")).write_text("")
    old = await gens.live()
    await gens.switch(new)
    assert await gens.live() == new
    assert (folder / "jobledger.db.current").read_text() == "jobledger.g2.db\n"
    with pytest.raises(ValueError):
        await gens.remove(new)  # the live one is never removed
    await gens.remove(old)
    assert not (folder / "jobledger.db").exists()
    # An interrupted rebuild's leftovers go; numbers are never reused.
    (folder / "jobledger.g3.db").write_text("half")
    third = await gens.prepare()
    assert third.name == "jobledger.g4.db"
    assert not (folder / "jobledger.g3.db").exists()
    assert (folder / "jobledger.g2.db-wal").exists()  # the live one's files stay


async def test_one_rebuild_at_a_time(tmp_path: Path) -> None:
    gens = SqliteGenerations(f"sqlite+aiosqlite:///{tmp_path}/jobledger.db")
    other = SqliteGenerations(f"sqlite+aiosqlite:///{tmp_path}/jobledger.db")
    async with gens.lock():
        with pytest.raises(Unsupported, match="another rebuild"):
            async with other.lock():
                pass
    async with other.lock():
        pass


async def test_a_bad_pointer_is_refused(tmp_path: Path) -> None:
    gens = SqliteGenerations(f"sqlite+aiosqlite:///{tmp_path}/jobledger.db")
    (tmp_path / "jobledger.db.current").write_text("../elsewhere.db")
    with pytest.raises(ValueError):
        await gens.live()


async def test_stores_without_generations_serve_but_refuse_rebuilds() -> None:
    for url in ("sqlite+aiosqlite:///:memory:", "postgresql+psycopg://u@localhost/db"):
        gens = generations_for(url)
        assert isinstance(gens, FixedStore)
        assert (await gens.live()).url == url
        with pytest.raises(Unsupported):
            await gens.prepare()
        with pytest.raises(Unsupported):
            gens.lock()


async def test_live_store_follows_a_switch(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/jobledger.db"
    store = LiveStore(url, check_secs=0.0)
    engine = await store.open()
    async with engine.begin() as conn:
        await conn.execute(insert(job_positions).values(job_id="old", last_seq=1))
    assert not await store.switched()
    gens = SqliteGenerations(url)
    new = await gens.prepare()
    fresh = LiveStore(new.url)  # what the rebuild fills (here: one row)
    async with (await fresh.open()).begin() as conn:
        await conn.execute(insert(job_positions).values(job_id="new", last_seq=2))
    await fresh.close()
    await gens.switch(new)
    assert await store.switched()
    assert store.generation == new
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(job_positions.c.job_id))).all()
    assert rows == [("new",)]
    assert not await store.switched()
    await store.close()


async def test_live_store_looks_at_most_once_per_interval(
        tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/jobledger.db"
    store = LiveStore(url, check_secs=3600.0)
    await store.open()
    gens = SqliteGenerations(url)
    new = await gens.prepare()
    engine = make_engine(new.url)
    await create_schema(engine)
    await engine.dispose()
    await gens.switch(new)
    assert not await store.switched()  # not looked yet: the pointer is read once an hour
    await store.close()


def test_lag_and_catching_up() -> None:
    ends = {0: 10, 1: 0, 2: 5}
    assert events_behind({}, ends) == 15
    assert events_behind({0: 4, 1: 0, 2: 5}, ends) == 6
    assert not caught_up({0: 4, 1: 0, 2: 5}, ends)
    assert caught_up({0: 10, 1: 0, 2: 5}, ends)
    assert caught_up({0: 12, 2: 5}, ends)  # past an end seen earlier: still caught up


def test_progress_line() -> None:
    progress = Progress(started=100.0)
    progress.read, progress.applied = 5000, 4990
    line = progress.line(102.0, 1234)
    assert line == ("rebuild: 5000 records read, 4990 events applied, 2,500 records/s now "
                    "(2,500 overall), 1234 behind")
    progress.read = 6000
    assert "1,000 records/s now (2,000 overall)" in progress.line(103.0, 0)
    assert progress.rate(104.0) == 1500.0
