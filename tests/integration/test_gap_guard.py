"""The gap tripwire reads back records the stream skipped, in order, from the real broker."""

import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from services.kafka import make_consumer, make_producer
from services.processor.gaps import GapGuard

pytestmark = pytest.mark.kafka


async def _topic(bootstrap: str, records: int) -> str:
    topic = f"gaps-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = make_producer(bootstrap)
    await producer.start()
    for i in range(records):
        await producer.send_and_wait(topic, f"c{i}".encode())
    await producer.stop()
    return topic


async def test_skipped_offsets_are_read_back_before_the_record_after_them(
        kafka_bootstrap: str) -> None:
    topic, group = await _topic(kafka_bootstrap, 10), f"g-{uuid.uuid4().hex[:8]}"
    tp = TopicPartition(topic, 0)
    committer = make_consumer(kafka_bootstrap, group_id=group)
    await committer.start()
    committer.assign([tp])
    await committer.commit({tp: OffsetAndMetadata(2, "")})
    await committer.stop()
    reports: list[tuple[int, int, int]] = []

    async def on_gap(partition: int, start: int, end: int) -> None:
        reports.append((partition, start, end))

    guard = GapGuard(kafka_bootstrap, topic, group, on_gap)
    # The stream's first record is 7: 2..6 were skipped.
    assert await guard.missing(0, 7) == [(i, f"c{i}".encode()) for i in range(2, 7)]
    assert await guard.missing(0, 8) == []  # contiguous: nothing to fill
    assert await guard.missing(0, 5) == []  # a redelivery of an older record
    assert await guard.missing(0, 9) == []  # 9 follows 8; 5 was a redelivery
    assert (guard.fired, guard.read_back, reports) == (1, 5, [(0, 2, 7)])


async def test_without_a_committed_offset_the_stream_must_start_at_the_first(
        kafka_bootstrap: str) -> None:
    topic = await _topic(kafka_bootstrap, 4)
    guard = GapGuard(kafka_bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}")
    assert [offset for offset, _ in await guard.missing(0, 3)] == [0, 1, 2]
    assert guard.fired == 1
