"""Where the projector's transactions run: a batch is one blocking function
(``apply_batch_sync``) over one connection, in one transaction.

On SQLite the whole transaction runs in a worker thread on a blocking engine
(projections.db.thread_engine): one hop out of the event loop per batch rather than one
per statement. Elsewhere (PostgreSQL, an in-memory SQLite database) it runs through the
async engine, as ``AsyncConnection.run_sync``.
"""

import asyncio
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.db import thread_engine

P = ParamSpec("P")
T = TypeVar("T")


class Transactions:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._blocking: Engine | None = thread_engine(engine)

    async def run(self, work: Callable[Concatenate[Connection, P], T], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        """``work(conn, *args)`` in one transaction, committed when it returns."""
        if self._blocking is None:
            async with self.engine.begin() as conn:
                return await conn.run_sync(work, *args, **kwargs)
        blocking = self._blocking

        def in_thread() -> T:
            with blocking.begin() as conn:
                return work(conn, *args, **kwargs)
        return await asyncio.to_thread(in_thread)

    def close(self) -> None:
        if self._blocking is not None:
            self._blocking.dispose()
