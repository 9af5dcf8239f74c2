"""Raw aiokafka produce+consume on the bench's broker, with the services' producer settings
(acks=all, idempotent): records/s from the first send to the last record read back."""

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.kafka import make_producer

RECORD = b"x" * 400  # about the size of one event envelope


async def raw_rate(bootstrap: str, count: int) -> float:
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    producer = make_producer(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await producer.start()
    try:
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(4)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            started = time.perf_counter()
            sends = [await producer.send(topic, RECORD, key=str(i).encode())
                     for i in range(count)]
            await asyncio.gather(*sends)
            seen = 0
            while seen < count:
                batch = await consumer.getmany(timeout_ms=1000)
                seen += sum(len(records) for records in batch.values())
            elapsed = time.perf_counter() - started
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    return count / elapsed
