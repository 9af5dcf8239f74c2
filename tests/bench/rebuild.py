"""Measure ``jobledger projections rebuild``: events/s replaying a log of 100,000 events.

    .venv/bin/python -m tests.bench.rebuild [--events 100000] [--partitions 8] [--jobs 50]

Puts ``--events`` encoded events on a fresh events topic (job.created, then
run.triggered / run.dispatched / run.completed, as tests.bench.projector_apply makes them,
over ``--jobs`` jobs spread across ``--partitions`` partitions), on the broker
KAFKA_BOOTSTRAP_SERVERS names or one it starts. Then runs the rebuild exactly as the
command does (services.projector.rebuild: its own consumer from offset 0, the projector's
apply code, a new SQLite generation, the switch) and prints records/s, with the command
that produced the figure.
"""

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

from events.topics import Topics
from services.config import Settings
from services.kafka import ensure_topics, make_producer
from services.projector.rebuild import rebuild
from tests.bench.projector_apply import synthetic


async def produce(bootstrap: str, topic: str, records: list[tuple[int, int, bytes]]) -> float:
    """Write the records to their partitions; returns the seconds it took."""
    producer = make_producer(bootstrap, linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    try:
        for i in range(0, len(records), 5000):
            sent = [await producer.send(topic, value, partition=partition)
                    for partition, _, value in records[i:i + 5000]]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def bench(args: argparse.Namespace, bootstrap: str, home: Path) -> str:
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
                        partitions=args.partitions,
                        database_url=f"sqlite+aiosqlite:///{home}/jobledger.db")
    await ensure_topics(bootstrap, settings.topics, settings.partitions)
    records = synthetic(args.events, jobs=args.jobs, partitions=args.partitions)
    secs = await produce(bootstrap, Topics(settings.topic_prefix).events, records)
    print(f"[bench] {len(records):,} events on {settings.topics.events} in {secs:.1f} s",
          file=sys.stderr, flush=True)
    wall, cpu = time.perf_counter(), time.process_time()
    done = await rebuild(settings, out=lambda line: print(f"[bench] {line}", file=sys.stderr,
                                                          flush=True), grace_secs=0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    with sqlite3.connect(home / done.new.name) as db:
        (runs,) = db.execute("SELECT count(*) FROM runs").fetchone()
    assert done.records == len(records), (done.records, len(records))
    return (f"rebuild: {done.records:,} events replayed in {done.seconds:.1f} s = "
            f"{done.rate:,.0f} events/s ({runs:,} runs in the new generation; "
            f"{cpu / done.records * 1e6:.0f} us CPU per event, {wall:.1f} s with set-up "
            f"and switch)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.rebuild", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args(argv)
    command = "python -m tests.bench.rebuild " + " ".join(argv or sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="jobledger-rebuild-bench-") as tmp:
        home = Path(tmp)
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        node = None
        if not bootstrap:
            from deploy.kafka.node import KafkaNode

            node = KafkaNode(home / "kafka")
            node.start()
            bootstrap = node.bootstrap
        try:
            line = asyncio.run(bench(args, bootstrap, home))
        finally:
            if node is not None:
                node.stop()
    print(f"{line}\n  (command: {command.strip()})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
