"""Measure the projector's apply layer alone: no Kafka, a SQLite file (or PostgreSQL),
synthetic events.

    .venv/bin/python -m tests.bench.projector_apply [--events 20000] [--batch 1000]
        [--apply path/to/projector.py] [--postgresql | --url DATABASE_URL]

Generates ``--events`` events (job.created, then run.triggered / run.dispatched /
run.completed for about a third as many runs, spread over a few jobs and interleaved the
way a busy processor writes them), applies them in batches of ``--batch`` records, each in
one transaction, and prints events/s and CPU seconds (the whole process, the database
thread included). ``--apply`` loads ``apply_batch_sync`` from another file, e.g. a copy of an
older projector, to compare. ``--postgresql`` runs on a PostgreSQL cluster started for the
run (tests.pgserver, with fsync off: it measures the code, not the disk); ``--url`` on an
empty database of your own.
"""

import argparse
import asyncio
import importlib.util
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from events import Envelope, encode_event
from events.types import (
    Event,
    ExecutionTrace,
    JobCreated,
    JobSpec,
    RunCompleted,
    RunDispatched,
    RunTriggered,
)
from projections.db import create_schema, make_engine
from services.projector.transactions import Transactions

Record = tuple[int, int, bytes]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOPIC = "bench.events"
JOBS = 3
LAG = 40  # how many runs behind the trigger the dispatch and completion come


def synthetic(total: int, jobs: int = JOBS, partitions: int = 3) -> list[Record]:
    seqs = dict.fromkeys(range(jobs), 0)
    offsets = dict.fromkeys(range(partitions), 0)
    out: list[Record] = []

    def emit(job: int, run: str | None, event: Event) -> None:
        seqs[job] += 1
        partition = job % partitions
        env = Envelope(event_id=f"e{job}.{seqs[job]}", type=event.TYPE,
                       version=event.VERSION, project_id="p", job_id=f"job{job}",
                       seq=seqs[job], occurred_at=T0 + timedelta(milliseconds=len(out)),
                       command_id=f"c{len(out)}", run_id=run)
        out.append((partition, offsets[partition], encode_event(env, event)))
        offsets[partition] += 1

    for job in range(jobs):
        emit(job, None, JobCreated(spec=JobSpec(name=f"Job {job}", slug=f"job-{job}",
                                                endpoint_url="http://127.0.0.1:9000/hook")))
    runs = -(-(total - jobs) // 3)  # the last runs may stop short of completion
    for step in range(runs + 2 * LAG):
        for lag, make in ((0, _triggered), (LAG, _dispatched), (2 * LAG, _completed)):
            n = step - lag
            if 0 <= n < runs and len(out) < total:
                emit(n % jobs, f"run{n}", make(n))
    return out


def _triggered(n: int) -> Event:
    return RunTriggered(payload={"n": n, "text": "hello"}, metadata={"source": "bench"})


def _dispatched(n: int) -> Event:
    return RunDispatched(attempt=1, endpoint_url="http://127.0.0.1:9000/hook")


def _completed(n: int) -> Event:
    # As the executor reports it: with the attempt's measured trace.
    trace = ExecutionTrace(queue_wait_ms=3.2, dequeue_ms=0.05, connect_ms=0.0, ttfb_ms=1.1,
                           transfer_ms=0.1, dispatch_ms=1.3, total_ms=4.6)
    return RunCompleted(attempt=1, result={"ok": True, "n": n}, status_code=200,
                        duration_ms=1.5, trace=trace)


def load_apply(path: str | None) -> Callable[..., Any]:
    """``apply_batch_sync`` of the projections, or of the file at ``path``."""
    if path is None:
        from projections.projector import apply_batch_sync
        return apply_batch_sync
    spec = importlib.util.spec_from_file_location("projector_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    apply: Callable[..., Any] = module.apply_batch_sync
    return apply


async def run(total: int, batch: int, apply_path: str | None, url: str,
              per_statement: bool = False) -> None:
    apply_batch_sync = load_apply(apply_path)
    records = synthetic(total)
    engine = make_engine(url)
    await create_schema(engine)
    # As the projector runs a batch (services.projector.transactions), or through the
    # async engine statement by statement (--per-statement: aiosqlite's way).
    transactions = Transactions(engine)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(records), batch):
            if per_statement:
                async with engine.begin() as conn:
                    await conn.run_sync(apply_batch_sync, TOPIC, records[i:i + batch])
            else:
                await transactions.run(apply_batch_sync, TOPIC, records[i:i + batch])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        transactions.close()
        await engine.dispose()
    print(f"{len(records)} events in batches of {batch} ({apply_path or 'projections'}): "
          f"{len(records) / wall:,.0f} events/s, {cpu:.2f} s CPU "
          f"({cpu / len(records) * 1e6:.0f} us CPU per event), {wall:.2f} s wall, on "
          f"{engine.dialect.name}"
          + (" (CPU: this process only, not the server's)" if engine.dialect.name
             != "sqlite" else ""))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.projector_apply")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--apply",
                        help="a file defining apply_batch_sync (default: projections)")
    parser.add_argument("--per-statement", action="store_true",
                        help="through the async engine, each statement a hop to its driver")
    parser.add_argument("--db", type=Path, help="the SQLite file (default: a temporary one)")
    parser.add_argument("--url", help="an empty database to run on instead (a SQLAlchemy URL)")
    parser.add_argument("--postgresql", action="store_true",
                        help="on a PostgreSQL cluster started for the run")
    args = parser.parse_args()
    if args.postgresql:
        from tests.pgserver import PgServer

        server = PgServer()
        try:
            asyncio.run(run(args.events, args.batch, args.apply, server.start(),
                            args.per_statement))
        finally:
            server.remove()
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite+aiosqlite:///{args.db or Path(tmp) / 'bench.db'}"
        asyncio.run(run(args.events, args.batch, args.apply, url, args.per_statement))


if __name__ == "__main__":
    main()
