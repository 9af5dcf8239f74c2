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
