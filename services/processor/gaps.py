"""Commands in log order, even if faust's stream skips some: a tripwire.

The commands topic has contiguous offsets (no compaction, no transactions), so a forward
jump between two records of a partition means the stream skipped records. faust 0.15.3
did so around a restart (its hand-over is fixed in ``handover.py``); this guard stays as
the tripwire that shows whether it still happens. Skipping breaks the processor's promise
(commands decided in log order, each at least once): a skipped trigger is lost, and a
later command decided before an earlier one can claim seqs the earlier one's events
already hold on the log. So the agent reads skipped ranges back from Kafka itself and
decides them first, and every firing is logged at ERROR and counted (``fired``,
``read_back``) and reported through ``on_gap`` (the app writes a dead letter for it, so
it shows on /readyz).
"""

import logging
from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.kafka import make_consumer

log = logging.getLogger(__name__)

# partition, first skipped offset, the offset after the last skipped one
OnGap = Callable[[int, int, int], Awaitable[None]]
TRIPWIRE = "GAP TRIPWIRE"  # marks the log line (tests count it)


class GapGuard:
    """Tracks the next expected offset per partition of one topic and fills jumps."""

    def __init__(self, bootstrap: str, topic: str, group_id: str,
                 on_gap: OnGap | None = None) -> None:
        self.bootstrap, self.topic, self.group_id = bootstrap, topic, group_id
        self.on_gap = on_gap
        self._next: dict[int, int] = {}
        self.fired = 0  # jumps seen
        self.read_back = 0  # records read back

    def forget(self) -> None:
        """After a rebalance the partitions may have moved: learn them again."""
        self._next.clear()

    async def missing(self, partition: int, offset: int) -> list[tuple[int, bytes]]:
        """Call before handling the record at ``offset``: the records the stream skipped
        before it, as (offset, value) in log order, read back from Kafka."""
        expected = self._next.get(partition)
        if expected is None:
            expected = await self._start(partition)
        records: list[tuple[int, bytes]] = []
        if offset > expected:
            self.fired += 1
            log.error("%s: commands partition %d: the stream skipped offsets %d..%d; "
                      "reading them back (fired %d times)", TRIPWIRE, partition, expected,
                      offset - 1, self.fired)
            records = await self._read(partition, expected, offset)
            self.read_back += len(records)
            if self.on_gap is not None:
                try:
                    await self.on_gap(partition, expected, offset)
                except Exception:  # reporting must not stop the read-back records
                    log.exception("reporting a gap failed")
        # A record below ``expected`` is a redelivery: handled again, answered once.
        self._next[partition] = max(offset + 1, expected)
        return records

    async def _start(self, partition: int) -> int:
        """Where the stream must start: the group's committed offset, or without one the
        partition's first offset (the processor reads from the earliest)."""
        tp = TopicPartition(self.topic, partition)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.group_id, partitions=[tp])
        finally:
            await admin.close()
        committed = offsets.get(tp)
        if committed is not None and committed.offset >= 0:
            return int(committed.offset)
        consumer = make_consumer(self.bootstrap)
        await consumer.start()
        try:
            return int((await consumer.beginning_offsets([tp]))[tp])
        finally:
            await consumer.stop()

    async def _read(self, partition: int, start: int, end: int) -> list[tuple[int, bytes]]:
        tp = TopicPartition(self.topic, partition)
        consumer = make_consumer(self.bootstrap)
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            records: list[tuple[int, bytes]] = []
            # By position, not by count: records past retention are simply not there.
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                records += [(r.offset, r.value) for r in batch.get(tp, [])
                            if r.offset < end and r.value is not None]
            return records
        finally:
            await consumer.stop()
