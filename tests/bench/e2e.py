"""``make bench``: end-to-end runs/s against the raw Kafka rate, in one invocation.

1. raw: aiokafka produces N records (acks=all, idempotent, the services' settings) and
   consumes them back; records/s from the first send to the last record read.
2. end to end: the four services as ``make run`` starts them, a no-op loopback endpoint,
   M runs triggered through the API by concurrent clients; completed runs/s from the first
   trigger until the last run is completed *in the projection*.
Prints both, their ratio, and the Kafka records written per run. Not part of the tests.
"""

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.kafka import make_producer, topic_partitions
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import create_job, start_stack, wait_ready

RECORD = b"x" * 400  # about the size of one event envelope


async def raw_rate(bootstrap: str, count: int) -> float:
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 4, 1)])
    await admin.close()
    producer = make_producer(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(4)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    started = time.perf_counter()
    sends = [await producer.send(topic, RECORD, key=str(i).encode()) for i in range(count)]
    await asyncio.gather(*sends)
    seen = 0
    while seen < count:
        batch = await consumer.getmany(timeout_ms=1000)
        seen += sum(len(records) for records in batch.values())
    elapsed = time.perf_counter() - started
    await producer.stop()
    await consumer.stop()
    return count / elapsed


def _completed(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM runs WHERE status = 'completed'")
                   .fetchone()[0])


async def _records_written(bootstrap: str, prefix: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if t.startswith(prefix)]
        tps = await topic_partitions(bootstrap, *topics)
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def e2e_rate(bootstrap: str, runs: int, clients: int,
                   home: Path) -> tuple[float, float, list[float]]:
    endpoint = Endpoint()
    await endpoint.start()
    stack = start_stack(bootstrap, home)
    try:
        await wait_ready(stack)
        async with stack.client(timeout=120) as client:
            job = await create_job(client, f"bench-{uuid.uuid4().hex[:6]}",
                                   f"{endpoint.base_url}/noop")
            before = await _records_written(bootstrap, stack.prefix)
            limit = asyncio.Semaphore(clients)

            latencies: list[float] = []

            async def trigger(i: int) -> None:
                async with limit:
                    sent = time.perf_counter()
                    response = await client.post(f"/v1/jobs/{job['id']}/trigger",
                                                 json={"payload": {"i": i}})
                    latencies.append(time.perf_counter() - sent)
                    assert response.status_code in (201, 202), response.text

            started = time.perf_counter()
            await asyncio.gather(*(trigger(i) for i in range(runs)))
            while _completed(stack.database_path) < runs:
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            records = await _records_written(bootstrap, stack.prefix) - before
        return runs / elapsed, records / runs, sorted(latencies)
    finally:
        stack.stack.stop()
        await endpoint.stop()


async def main(args: argparse.Namespace) -> None:
    import os

    from deploy.kafka.node import KafkaNode

    home = Path(tempfile.mkdtemp(prefix="jobledger-bench-"))
    node = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        node = KafkaNode(home / "kafka")
        node.start()
        bootstrap = node.bootstrap
    try:
        raw = await raw_rate(bootstrap, args.records)
        e2e, per_run, latencies = await e2e_rate(bootstrap, args.runs, args.clients,
                                                 home / "stack")
    finally:
        if node:
            node.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(f"raw Kafka produce+consume : {raw:10.0f} records/s  ({args.records} records)")
    print(f"end-to-end completed runs : {e2e:10.1f} runs/s     ({args.runs} runs, "
          f"{args.clients} concurrent API clients)")
    print(f"Kafka records per run     : {per_run:10.1f}")
    p50, p99 = (latencies[int(q * (len(latencies) - 1))] * 1000 for q in (0.5, 0.99))
    print(f"trigger response (201 = visible in the projection): p50 {p50:.0f} ms, "
          f"p99 {p99:.0f} ms")
    print(f"ratio e2e runs / raw recs : {e2e / raw:10.4f}  "
          f"(runs/s x records/run / raw = {e2e * per_run / raw:.2f} of raw throughput)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
