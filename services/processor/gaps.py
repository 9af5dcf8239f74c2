"""Commands in log order, even when faust's stream skips some.

The commands topic has contiguous offsets (no compaction, no transactions), so a forward
jump between two records of a partition means the stream skipped records; we saw faust do
so around a restart. Skipping breaks the processor's promise (commands decided in log
order, each at least once): a skipped trigger is lost, and a later command decided before
an earlier one can claim seqs the earlier one's events already hold on the log. So the
agent reads skipped ranges back from Kafka itself and handles them first.
"""

import logging
from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.kafka import make_consumer

log = logging.getLogger(__name__)

Handle = Callable[[bytes], Awaitable[None]]


class GapGuard:
    """Tracks the next expected offset per partition of one topic and fills jumps."""

    def __init__(self, bootstrap: str, topic: str, group_id: str) -> None:
        self.bootstrap, self.topic, self.group_id = bootstrap, topic, group_id
        self._next: dict[int, int] = {}

    def forget(self) -> None:
        """After a rebalance the partitions may have moved: learn them again."""
        self._next.clear()

    async def before(self, partition: int, offset: int, handle: Handle) -> None:
        """Call before handling the record at ``offset``: handles any records it skipped."""
        expected = self._next.get(partition)
        if expected is None:
            expected = await self._committed(partition)
        if expected is not None and offset > expected:
            log.warning("commands partition %d: stream skipped offsets %d..%d; "
                        "reading them back", partition, expected, offset - 1)
            for raw in await self._read(partition, expected, offset):
                await handle(raw)
        # A record below ``expected`` is a redelivery: handled again, answered once.
        self._next[partition] = max(offset + 1, expected or 0)

    async def _committed(self, partition: int) -> int | None:
        tp = TopicPartition(self.topic, partition)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.group_id, partitions=[tp])
        finally:
            await admin.close()
        committed = offsets.get(tp)
        return None if committed is None or committed.offset < 0 else committed.offset

    async def _read(self, partition: int, start: int, end: int) -> list[bytes]:
        tp = TopicPartition(self.topic, partition)
        consumer = make_consumer(self.bootstrap)
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            values: list[bytes] = []
            # By position, not by count: records past retention are simply not there.
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                values += [r.value for r in batch.get(tp, []) if r.offset < end]
            return values
        finally:
            await consumer.stop()
