"""Wait until the read model has applied a job's event ``seq``.

The projector announces, after each committed batch, the position of every job the batch
moved (``<prefix>.projected``, see projections.notices). Every API process listens to
that topic from its end and wakes the requests waiting on those jobs: a request costs no
query of its own. The positions heard are remembered, so a request that starts waiting
after its notice went by returns at once. Notices are fire and forget; for one that is
lost, a slow poll of the database (one query for all waiting jobs) is the safety net.
"""

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.notices import decode_projected
from projections.queries import job_positions_of
from services.kafka import topic_partitions

log = logging.getLogger(__name__)

FALLBACK_POLL_SECS = 1.0
KNOWN_JOBS = 100_000  # positions remembered (least recently heard dropped first)


class ProjectionWatcher:
    def __init__(self, engine: AsyncEngine, consumer: AIOKafkaConsumer, bootstrap: str,
                 topic: str) -> None:
        self.engine, self.consumer = engine, consumer
        self.bootstrap, self.topic = bootstrap, topic
        self._waiting: dict[str, list[tuple[int, asyncio.Future[None]]]] = defaultdict(list)
        self._known: OrderedDict[str, int] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        # Called with the positions of every notice heard (the live streams' wake-up).
        self.listeners: list[Callable[[dict[str, int]], None]] = []

    async def start(self) -> None:
        tps = await topic_partitions(self.bootstrap, self.topic)
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end now: notices from here on are heard
            await self.consumer.position(tp)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._poll())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def wait_for(self, job_id: str, seq: int, timeout: float) -> bool:
        """True once the projection has applied ``seq`` of the job, False after timeout."""
        if self._known.get(job_id, 0) >= seq:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (seq, future)
        self._waiting[job_id].append(entry)
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

    def applied(self, positions: dict[str, int]) -> None:
        """The projection has applied these positions: wake whoever they satisfy."""
        for listener in self.listeners:
            listener(positions)
        for job_id, seq in positions.items():
            if seq > self._known.get(job_id, 0):
                self._known[job_id] = seq
                self._known.move_to_end(job_id)
            for wanted, future in self._waiting.get(job_id, ()):
                if wanted <= seq and not future.done():
                    future.set_result(None)
        while len(self._known) > KNOWN_JOBS:
            self._known.popitem(last=False)

    async def _listen(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=1000)
            except KafkaError as exc:  # keep listening; the poll covers the gap
                log.warning("listening for projection notices failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for record in records:
                    try:
                        self.applied(decode_projected(record.value).positions)
                    except msgspec.DecodeError:
                        log.warning("skipping a record that is not a projection notice")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(FALLBACK_POLL_SECS)
            if not self._waiting:
                continue
            try:
                self.applied(await job_positions_of(self.engine, list(self._waiting)))
            except Exception:  # a locked or restarting database: try again next time
                log.exception("reading projection positions failed")
