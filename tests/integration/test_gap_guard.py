"""The processor reads back records its stream skipped, in order, from the real broker."""

import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from services.kafka import make_consumer, make_producer
from services.processor.gaps import GapGuard

pytestmark = pytest.mark.kafka


async def test_skipped_offsets_are_handled_before_the_record_after_them(
        kafka_bootstrap: str) -> None:
    topic, group = f"gaps-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topic, f"c{i}".encode())
    await producer.stop()
    tp = TopicPartition(topic, 0)
    committer = make_consumer(kafka_bootstrap, group_id=group)
    await committer.start()
    committer.assign([tp])
    await committer.commit({tp: OffsetAndMetadata(2, "")})
    await committer.stop()

    handled: list[bytes] = []

    async def handle(raw: bytes) -> None:
        handled.append(raw)

    guard = GapGuard(kafka_bootstrap, topic, group)
    await guard.before(0, 7, handle)  # the stream's first record is 7: 2..6 were skipped
    assert handled == [b"c2", b"c3", b"c4", b"c5", b"c6"]
    await guard.before(0, 8, handle)  # contiguous: nothing to fill
    await guard.before(0, 5, handle)  # a redelivery of an older record: nothing to fill
    assert len(handled) == 5
    await guard.before(0, 9, handle)
    assert len(handled) == 5  # 9 follows 8; 5 was a redelivery
