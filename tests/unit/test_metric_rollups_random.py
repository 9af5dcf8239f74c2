"""The metric rollups against a brute-force oracle: random run lifecycles (delays,
retries, every end state, runs left running), their events in time order cut into random
batches, and every rollup row compared with one computed straight from each run's own
events (tests/unit/test_metrics.py has the hand-counted case)."""

import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from events import Envelope, encode_event
from events.types import (
    AttemptFailure,
    Event,
    JobCreated,
    RunCanceled,
    RunCompleted,
    RunCrashed,
    RunDispatched,
    RunExpired,
    RunFailed,
    RunHeartbeatRecorded,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)
from projections import histogram
from projections.projector import apply_batch
from projections.rollups import SPANS, WHOLE_PROJECT, bucket_start
from projections.tables import metric_rollups
from tests.unit.domain_support import at, spec
from tests.unit.test_projections import engine_at

TOPIC = "t.events"
FAILURE = AttemptFailure(kind="http_status", message="500", retryable=True)
JOBS = ("ja", "jb")
COUNTS = ("started", "completed", "failed", "timed_out", "crashed", "canceled", "expired")

Timed = tuple[float, str, str, Event]  # seconds, job, run, event


def lifecycle(rng: random.Random, job: str, run: str) -> list[Timed]:
    t = rng.uniform(0, 20_000)

    def later(most: float = 120.0) -> float:
        nonlocal t
        t += rng.choice([0.0, rng.uniform(0.0001, 0.002), rng.uniform(0.002, most)])
        return t

    scheduled = t + rng.uniform(1, 600) if rng.random() < 0.3 else None
    events: list[Timed] = [(t, job, run, RunTriggered(
        payload=None, scheduled_at=None if scheduled is None else at(scheduled)))]
    path = rng.choice(["canceled before", "expired", "ran", "ran", "ran", "running"])
    if path == "canceled before":
        return [*events, (later(), job, run, RunCanceled())]
    if scheduled is not None:
        t = scheduled
        events.append((t, job, run, RunRequeued(next_attempt=1)))
    if path == "expired":
        return [*events, (later(), job, run, RunExpired(expires_at=at(t)))]
    attempts = rng.randint(1, 3)
    for attempt in range(1, attempts + 1):
        events.append((later(), job, run, RunDispatched(attempt=attempt,
                                                        endpoint_url="http://x")))
        if rng.random() < 0.3:
            events.append((later(), job, run, RunHeartbeatRecorded(attempt=attempt)))
        if path == "running" and attempt == attempts:
            return events
        if attempt < attempts:
            events.append((later(), job, run, RunRetryScheduled(
                attempt=attempt, failure=FAILURE, next_retry_at=at(t + 10))))
            events.append((later(), job, run, RunRequeued(next_attempt=attempt + 1)))
    end: Event = rng.choice([
        RunCompleted(attempt=attempts), RunCompleted(attempt=attempts),
        RunFailed(attempt=attempts, failure=FAILURE),
        RunFailed(attempt=attempts, failure=FAILURE, status="timed_out"),
        RunCrashed(attempt=attempts, heartbeat_due_at=at(t)), RunCanceled()])
    return [*events, (later(10_000), job, run, end)]


def records_of(timed: list[Timed]) -> list[tuple[int, int, bytes]]:
    seqs: dict[str, int] = {}
    out = []
    for secs, job, run, event in sorted(timed, key=lambda e: e[0]):
        seq = seqs[job] = seqs.get(job, 0) + 1
        env = Envelope(event_id=f"{job}.{seq}", type=event.TYPE, version=event.VERSION,
                       project_id="p", job_id=job, seq=seq, occurred_at=at(secs),
                       command_id=f"c{len(out)}", run_id=run or None)
        out.append((0, len(out), encode_event(env, event)))
    return out


def oracle(timed: list[Timed]) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Every rollup row, from each run's own events (stable-sorted by time, as logged)."""
    by_run: dict[str, list[Timed]] = {}
    for item in sorted(timed, key=lambda e: e[0]):
        if item[2]:
            by_run.setdefault(item[2], []).append(item)
    rows: dict[tuple[str, int, int], dict[str, Any]] = {}

    def add(job: str, moment: datetime, column: str, hist: str | None, value: float) -> None:
        for scope in (job, WHOLE_PROJECT):
            for span in SPANS:
                row = rows.setdefault((scope, span, bucket_start(moment, span)), {
                    **dict.fromkeys(COUNTS, 0), "durations": {}, "waits": {}})
                row[column] += 1
                if hist is not None:
                    histogram.add(row[hist], value)

    for events in by_run.values():
        job = events[0][1]
        trigger = events[0][3]
        assert isinstance(trigger, RunTriggered)
        made = at(events[0][0])
        eligible = max(made, trigger.scheduled_at or made)
        starts = [at(s) for s, _, _, e in events if isinstance(e, RunDispatched)]
        if starts:
            add(job, starts[0], "started", "waits",
                max(0.0, (starts[0] - eligible).total_seconds()))
        secs, _, _, last = events[-1]
        status = {RunCompleted: "completed", RunCrashed: "crashed", RunCanceled: "canceled",
                  RunExpired: "expired"}.get(type(last))
        if isinstance(last, RunFailed):
            status = last.status
        if status == "completed":
            add(job, at(secs), status, "durations",
                max(0.0, (at(secs) - starts[-1]).total_seconds()))
        elif status is not None:
            add(job, at(secs), status, None, 0)
    return {key: {**row, "durations": histogram.stored(row["durations"]),
                  "waits": histogram.stored(row["waits"])} for key, row in rows.items()}


@pytest.mark.parametrize("seed", range(6))
async def test_rollups_equal_the_oracle_for_random_runs_in_random_batches(
        tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    timed: list[Timed] = [(-1.0, job, "", JobCreated(spec=spec(slug=job))) for job in JOBS]
    for n in range(60):
        timed += lifecycle(rng, rng.choice(JOBS), f"r{n}")
    records = records_of(timed)
    engine = await engine_at(tmp_path / "random.db")
    try:
        start = 0
        while start < len(records):
            size = rng.choice([1, 2, 7, 50, 400])
            async with engine.begin() as conn:
                await apply_batch(conn, TOPIC, records[start:start + size])
            start += size
        async with engine.connect() as conn:
            stored = {(r.job_id, r.span, r.bucket_start): {
                **{c: getattr(r, c) for c in COUNTS}, "durations": r.durations,
                "waits": r.waits} for r in await conn.execute(select(metric_rollups))}
        assert stored == oracle(timed)
    finally:
        await engine.dispose()
