"""Measure GET /v1/runs's query (projections.run_list.list_runs) with 200,000 runs in a
SQLite store, for each filter and sort, against the issue's bound of 50 ms a page.

    .venv/bin/python -m tests.bench.run_list [--runs 200000] [--repeat 30] [--db FILE]

Fills the store fast, without Kafka: generated events applied with the projector's own
``apply_batch`` (as tests.bench.projector_apply does), over 40 jobs of one project (the
worst case for the project scope), runs in every status, with tags, metadata, priorities,
concurrency keys, batches, correlation and idempotency keys, triggers of several kinds,
and children. ``--db`` keeps the filled file and reuses it on the next run.

Each case is timed ``--repeat`` times for its first page (limit 50), its second page by
keyset cursor, and a page at offset 1,000; it prints p50/p99 ms per case and which are
over 50 ms.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from events import Envelope, encode_event
from events.types import (
    AttemptFailure,
    Event,
    JobCreated,
    JobSpec,
    RunCanceled,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunTriggered,
)
from projections.db import create_schema, make_engine
from projections.projector import apply_batch
from projections.run_list import RunFilters, RunOrder, list_runs, position_of
from projections.tables import runs as runs_table

PROJECT = "bench"
JOBS = 40
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BOUND_MS = 50.0
PAGE = 50
Record = tuple[int, int, bytes]


class _Log:
    """Events as the processor would write them: per job, seq 1, 2, ..."""

    def __init__(self) -> None:
        self.seqs = dict.fromkeys(range(JOBS), 0)
        self.records: list[Record] = []

    def emit(self, job: int, run: str | None, event: Event, at: datetime) -> None:
        self.seqs[job] += 1
        env = Envelope(event_id=f"e{job}.{self.seqs[job]}", type=event.TYPE,
                       version=event.VERSION, project_id=PROJECT, job_id=f"job{job}",
                       seq=self.seqs[job], occurred_at=at, command_id=f"c{len(self.records)}",
                       run_id=run)
        self.records.append((0, len(self.records), encode_event(env, event)))


def _trigger(n: int) -> RunTriggered:
    return RunTriggered(
        payload={"n": n}, priority=n % 5,
        triggered_by=("api", "api", "api", "cron", "dependency")[n % 5],
        tags={"env": ("prod", "staging", "dev")[n % 3], "team": f"t{n % 7}"},
        metadata={"customer": f"c{n % 1000}"},
        concurrency_key=f"k{n % 50}" if n % 10 == 0 else None,
        batch_id=f"b{n // 100}" if n % 5 == 1 else None,
        correlation_id=f"corr{n // 3}" if n % 20 == 2 else None,
        idempotency_key=f"idem{n}" if n % 20 == 3 else None,
        parent_run_id=f"run{n - 1}" if n % 100 == 1 else None,
        lineage_depth=1 if n % 100 == 1 else 0)


def generate(total_runs: int) -> list[Record]:
    """Runs one second apart; 60% completed, 10% failed, 5% canceled, 10% running, 15%
    queued (the newest runs are the ones still waiting or running)."""
    log = _Log()
    for job in range(JOBS):
        log.emit(job, None, JobCreated(spec=JobSpec(
            name=f"Job {job}", slug=f"job-{job}", endpoint_url="http://127.0.0.1:9/h")), T0)
    for n in range(total_runs):
        job, run, at = n % JOBS, f"run{n}", T0 + timedelta(seconds=n)
        log.emit(job, run, _trigger(n), at)
        fate = n % 20
        if n >= total_runs * 0.97 or fate in (0, 1, 2):  # queued
            continue
        log.emit(job, run, RunDispatched(attempt=1, endpoint_url="http://127.0.0.1:9/h"),
                 at + timedelta(milliseconds=200))
        end = at + timedelta(seconds=1 + n % 30)
        if fate in (3, 4):
            continue  # running
        if fate in (5, 6):
            log.emit(job, run, RunFailed(attempt=1, failure=AttemptFailure(
                kind="http_status", message="500", status_code=500)), end)
        elif fate == 7:
            log.emit(job, run, RunCanceled(), end)
        else:
            log.emit(job, run, RunCompleted(attempt=1, result={"ok": True}, status_code=200,
                                            duration_ms=12.0), end)
    return log.records


async def fill(engine: AsyncEngine, total_runs: int) -> None:
    records = generate(total_runs)
    started = time.perf_counter()
    for i in range(0, len(records), 5000):
        async with engine.begin() as conn:
            await apply_batch(conn, "bench.events", records[i:i + 5000])
    print(f"[bench] {total_runs:,} runs ({len(records):,} events) applied in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def cases(total_runs: int) -> list[tuple[str, RunFilters, RunOrder]]:
    mid = T0 + timedelta(seconds=total_runs // 2)
    out: list[tuple[str, RunFilters, RunOrder]] = []
    for key in ("created_at", "started_at", "finished_at", "priority"):
        for descending in (True, False):
            out.append((f"all, by {key} {'desc' if descending else 'asc'}", RunFilters(),
                        RunOrder(key, descending)))  # type: ignore[arg-type]
    filters = {
        "job": RunFilters(equal={"job_id": "job7"}),
        "status=completed": RunFilters(statuses=("completed",)),
        "status=queued": RunFilters(statuses=("queued",)),
        "status=failed,canceled": RunFilters(statuses=("failed", "canceled")),
        "tag env=prod": RunFilters(tags=(("env", "prod"),)),
        "tags env=prod,team=t3": RunFilters(tags=(("env", "prod"), ("team", "t3"))),
        "metadata customer=c7": RunFilters(metadata=(("customer", "c7"),)),
        "concurrency_key": RunFilters(equal={"concurrency_key": "k10"}),
        "batch_id": RunFilters(equal={"batch_id": "b501"}),
        "triggered_by=cron": RunFilters(equal={"triggered_by": "cron"}),
        "parent_run_id": RunFilters(equal={"parent_run_id": "run500"}),
        "correlation_id": RunFilters(equal={"correlation_id": "corr334"}),
        "idempotency_key": RunFilters(equal={"idempotency_key": "idem1003"}),
        "created after mid": RunFilters(after={"created_at": mid}),
        "created before mid": RunFilters(before={"created_at": mid}),
        "started after mid": RunFilters(after={"started_at": mid}),
        "finished before mid": RunFilters(before={"finished_at": mid}),
    }
    for name, found in filters.items():
        out.append((name, found, RunOrder()))
    for name, found, key in (("status=completed", filters["status=completed"], "priority"),
                             ("job", filters["job"], "finished_at"),
                             ("tag env=prod", filters["tag env=prod"], "started_at"),
                             ("status=queued", filters["status=queued"], "priority"),
                             ("triggered_by=cron", filters["triggered_by=cron"], "finished_at"),
                             ("metadata customer=c7", filters["metadata customer=c7"],
                              "priority")):
        out.append((f"{name}, by {key}", found, RunOrder(key, True)))  # type: ignore[arg-type]
    return out


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def measure(engine: AsyncEngine, total_runs: int, repeat: int) -> list[str]:
    over: list[str] = []
    print(f"{'case':<44} {'rows':>5} {'first p50/p99 ms':>17} {'next p50/p99 ms':>16} "
          f"{'offset 1000 p50/p99':>20}")
    for name, found, order in cases(total_runs):
        timings: dict[str, list[float]] = {"first": [], "next": [], "offset": []}
        rows = 0
        for _ in range(repeat):
            started = time.perf_counter()
            page = await list_runs(engine, PROJECT, found, order, PAGE + 1)
            timings["first"].append(time.perf_counter() - started)
            rows = len(page)
            after = position_of(page[PAGE - 1], order) if len(page) > PAGE else None
            if after is not None:
                started = time.perf_counter()
                await list_runs(engine, PROJECT, found, order, PAGE + 1, after)
                timings["next"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await list_runs(engine, PROJECT, found, order, PAGE + 1, offset=1000)
            timings["offset"].append(time.perf_counter() - started)
        cells = []
        for kind in ("first", "next", "offset"):
            if not timings[kind]:
                cells.append("-")
                continue
            p50, p99 = _ms(timings[kind])
            cells.append(f"{p50:.1f}/{p99:.1f}")
            if p99 > BOUND_MS:
                over.append(f"{name} ({kind} page: p50 {p50:.1f} ms, p99 {p99:.1f} ms)")
        print(f"{name:<44} {min(rows, PAGE):>5} {cells[0]:>17} {cells[1]:>16} {cells[2]:>20}",
              flush=True)
    return over


async def run(args: argparse.Namespace, db: Path) -> int:
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    await create_schema(engine)
    try:
        async with engine.connect() as conn:
            have = (await conn.execute(select(func.count()).select_from(runs_table))).scalar()
        if have != args.runs:
            if have:
                raise SystemExit(f"{db} holds {have} runs, not {args.runs}: use another --db")
            await fill(engine, args.runs)
        over = await measure(engine, args.runs, args.repeat)
    finally:
        await engine.dispose()
    print(f"run list with {args.runs:,} runs (SQLite): {len(over)} of the measured pages "
          f"over {BOUND_MS:g} ms at p99" + "".join(f"\n  over: {o}" for o in over))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run_list", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--db", type=Path, help="keep the filled store here (and reuse it)")
    args = parser.parse_args(argv)
    command = "python -m tests.bench.run_list " + " ".join(argv or sys.argv[1:])
    print(f"(command: {command.strip()})")
    if args.db is not None:
        return asyncio.run(run(args, args.db))
    with tempfile.TemporaryDirectory(prefix="jobledger-run-list-bench-") as tmp:
        return asyncio.run(run(args, Path(tmp) / "runs.db"))


if __name__ == "__main__":
    sys.exit(main())
