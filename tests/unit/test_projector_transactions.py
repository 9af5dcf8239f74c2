"""Where the projector's transactions run (services.projector.transactions): on a SQLite
file in a worker thread, elsewhere through the async engine; committed whole or not at
all either way."""

import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from projections.db import make_engine
from projections.tables import job_tags
from services.projector.transactions import Transactions
from tests.unit.test_projections import engine_at


def _write(conn: Connection, job_id: str, fail: bool = False) -> str:
    conn.execute(job_tags.insert().values(job_id=job_id, key="k", value="v"))
    if fail:
        raise RuntimeError("the batch fails after writing")
    return threading.current_thread().name


async def _count(transactions: Transactions) -> int:
    async with transactions.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(job_tags)))
                   .scalar_one())


async def test_on_a_sqlite_file_a_batch_runs_in_a_worker_thread(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "t.db")
    transactions = Transactions(engine)
    try:
        ran_in = await transactions.run(_write, "j1")
        assert ran_in != threading.current_thread().name
        with pytest.raises(RuntimeError):
            await transactions.run(_write, "j2", fail=True)
        assert await _count(transactions) == 1  # the failed batch left nothing
    finally:
        transactions.close()
        await engine.dispose()


async def test_an_in_memory_database_keeps_the_async_engine() -> None:
    engine = make_engine("sqlite+aiosqlite:///:memory:")
    from projections.db import create_schema
    await create_schema(engine)
    transactions = Transactions(engine)
    try:
        # aiosqlite runs each statement in its own thread: the function itself runs on
        # the event loop's thread, inside run_sync's greenlet.
        assert await transactions.run(_write, "j1") == threading.current_thread().name
        with pytest.raises(RuntimeError):
            await transactions.run(_write, "j2", fail=True)
        assert await _count(transactions) == 1
    finally:
        transactions.close()
        await engine.dispose()


def test_services_switching_a_new_file_into_wal_together_all_succeed(tmp_path: Path) -> None:
    # Four connections switching a new file into WAL at the same moment: SQLite answers
    # some of them "database is locked" at once, busy timeout or not (about 3 trials in
    # 100 when each connection switched as it opened). into_wal tries again.
    import sqlite3

    from projections.db import into_wal

    failures: list[str] = []

    def switch(path: str) -> None:
        try:
            into_wal(path)
        except sqlite3.Error as exc:
            failures.append(str(exc))

    for trial in range(100):
        path = str(tmp_path / f"new{trial}.db")
        threads = [threading.Thread(target=switch, args=(path,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert failures == []


async def test_an_engine_finds_its_new_file_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    try:
        with sqlite3.connect(tmp_path / "fresh.db") as check:
            assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        await engine.dispose()
