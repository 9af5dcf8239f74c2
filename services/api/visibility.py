"""Wait until the read model has applied a job's event ``seq``.

One poller per API process asks the database about every waiting job at once, so the
number of queries does not grow with the number of requests in flight.
"""

import asyncio
import logging
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.queries import job_positions_of

log = logging.getLogger(__name__)

POLL_SECS = 0.01


class ProjectionWatcher:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._waiting: dict[str, list[tuple[int, asyncio.Future[None]]]] = defaultdict(list)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait_for(self, job_id: str, seq: int, timeout: float) -> bool:
        """True once the projection has applied ``seq`` of the job, False after timeout."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (seq, future)
        self._waiting[job_id].append(entry)
        self._wake.set()
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiting.get(job_id)
            if waiters is not None and entry in waiters:
                waiters.remove(entry)
                if not waiters:
                    del self._waiting[job_id]

    async def _poll(self) -> None:
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            try:
                positions = await job_positions_of(self.engine, list(self._waiting))
            except Exception:  # a locked or restarting database: try again shortly
                log.exception("reading projection positions failed")
                positions = {}
            for job_id, waiters in list(self._waiting.items()):
                applied = positions.get(job_id, 0)
                for seq, future in waiters:
                    if seq <= applied and not future.done():
                        future.set_result(None)
            await asyncio.sleep(POLL_SECS)
