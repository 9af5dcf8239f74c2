"""GET /v1/metrics without Kafka: the histogram's error bound, the rollups the projector
writes for a scripted set of runs against counts and percentiles worked out by hand (in
one batch, in any cut of batches, record by record through poison isolation, and offered
twice), the plan's limits, and the query's index."""

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from events import Envelope, encode_event
from events.types import (
    AttemptFailure,
    Event,
    JobCreated,
    RunCanceled,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunHeartbeatRecorded,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)
from projections import histogram
from projections import rollups as rollups_module
from projections.health import percentile as exact_percentile
from projections.metrics import (
    MAX_BUCKETS,
    ROWS_QUERY,
    Plan,
    TooFine,
    plan_of,
    read_metrics,
)
from projections.projector import apply_batch
from projections.tables import metric_rollups
from services.projector.app import Projector
from tests.unit.domain_support import T0, at, spec
from tests.unit.test_projections import engine_at
from tests.unit.test_projector_isolation import Letters

TOPIC = "t.events"
Record = tuple[int, int, bytes]

# --- the histogram -----------------------------------------------------------------

durations = st.floats(min_value=0, max_value=10 * 365 * 86400, allow_nan=False)


@given(durations)
def test_a_bin_reads_back_within_the_stated_error(value: float) -> None:
    back = histogram.value_of(histogram.bin_of(value))
    if value < histogram.MIN_SECS:
        assert back == 0
    else:
        assert abs(back - value) <= histogram.ERROR * value * (1 + 1e-9), (value, back)


@settings(max_examples=200)
@given(st.lists(durations, min_size=1, max_size=200),
       st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]))
def test_percentiles_are_within_the_stated_error_of_the_exact_ones(
        values: list[float], share: float) -> None:
    exact = exact_percentile(values, share)
    approx = histogram.percentile(histogram.of(values), share)
    assert exact is not None and approx is not None
    if exact < histogram.MIN_SECS:
        assert approx == 0
    else:
        assert abs(approx - exact) <= histogram.ERROR * exact * (1 + 1e-9), (exact, approx)


@given(st.lists(durations, max_size=50), st.lists(durations, max_size=50))
def test_merging_is_the_histogram_of_both(first: list[float], second: list[float]) -> None:
    merged = histogram.merge(histogram.of(first), histogram.stored(histogram.of(second)))
    assert merged == histogram.of(first + second)
    assert histogram.loaded(histogram.stored(merged)) == merged


def test_edges_of_the_histogram() -> None:
    assert histogram.percentile({}, 0.5) is None
    assert histogram.bin_of(-3.0) == histogram.bin_of(0.0) == 0
    assert histogram.bin_of(histogram.MIN_SECS) == 1
    # About 45 bins per factor of 100, so a few hundred from a millisecond to a year.
    assert 200 < histogram.bin_of(365 * 86400) < 300


# --- a scripted set of runs --------------------------------------------------------

FAILURE = AttemptFailure(kind="http_status", message="500", retryable=False)


class Script:
    """Events of several jobs in one partition's order, each job with its own seqs."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.seqs: dict[str, int] = {}

    def emit(self, job_id: str, run_id: str | None, event: Event, secs: float,
             project: str = "p") -> None:
        seq = self.seqs[job_id] = self.seqs.get(job_id, 0) + 1
        env = Envelope(event_id=f"{job_id}.{seq}", type=event.TYPE, version=event.VERSION,
                       project_id=project, job_id=job_id, seq=seq, occurred_at=at(secs),
                       command_id=f"c{len(self.records)}", run_id=run_id)
        self.records.append((0, len(self.records), encode_event(env, event)))


def scripted() -> Script:
    """T0 is a UTC midnight. Seconds after it (wait = first dispatch - eligible; duration =
    end - last start, completed runs only):

    r1 j1: made 10, dispatched 20 (wait 10), completed 50 (duration 30)
    r2 j1: made 30, dispatched 35 (wait 5), failed 100
    r3 j1: made 40 to run at 120, requeued 120, dispatched 130 (wait 10), retry at 140,
           requeued 200, dispatched 210 (not a first start), completed 3700 (3490)
    r4 j2: made 50, canceled 70 (never started)
    r5 j2: made 60, dispatched 65 (wait 5), heartbeat 90, timed out 4000
    r6 j1: made 3650, dispatched 3660 (wait 10), still running
    r7 of project q: made 10, dispatched 11, completed 12 (never counted for p)
    """
    s = Script()
    for job in ("j1", "j2"):
        s.emit(job, None, JobCreated(spec=spec(slug=job)), 0)
    s.emit("jq", None, JobCreated(spec=spec(slug="jq")), 0, project="q")
    go = RunDispatched(attempt=1, endpoint_url="http://x")
    s.emit("j1", "r1", RunTriggered(payload=1), 10)
    s.emit("jq", "r7", RunTriggered(payload=7), 10, project="q")
    s.emit("jq", "r7", go, 11, project="q")
    s.emit("jq", "r7", RunCompleted(attempt=1), 12, project="q")
    s.emit("j1", "r1", go, 20)
    s.emit("j1", "r2", RunTriggered(payload=2), 30)
    s.emit("j1", "r2", go, 35)
    s.emit("j1", "r3", RunTriggered(payload=3, scheduled_at=at(120)), 40)
    s.emit("j1", "r1", RunCompleted(attempt=1), 50)
    s.emit("j2", "r4", RunTriggered(payload=4), 50)
    s.emit("j2", "r5", RunTriggered(payload=5), 60)
    s.emit("j2", "r5", go, 65)
    s.emit("j2", "r4", RunCanceled(), 70)
    s.emit("j2", "r5", RunHeartbeatRecorded(attempt=1), 90)
    s.emit("j1", "r2", RunFailed(attempt=1, failure=FAILURE), 100)
    s.emit("j1", "r3", RunRequeued(next_attempt=1), 120)
    s.emit("j1", "r3", go, 130)
    s.emit("j1", "r3", RunRetryScheduled(attempt=1, failure=FAILURE, next_retry_at=at(200)),
           140)
    s.emit("j1", "r3", RunRequeued(next_attempt=2), 200)
    s.emit("j1", "r3", RunDispatched(attempt=2, endpoint_url="http://x"), 210)
    s.emit("j1", "r6", RunTriggered(payload=6), 3650)
    s.emit("j1", "r6", go, 3660)
    s.emit("j1", "r3", RunCompleted(attempt=2), 3700)
    s.emit("j2", "r5", RunFailed(attempt=1, failure=FAILURE, status="timed_out"), 4000)
    return s


NOW = at(4100)
ZERO = {"completed": 0, "failed": 0, "timed_out": 0, "crashed": 0, "canceled": 0,
        "expired": 0}


def ended(**counts: int) -> dict[str, int]:
    return {**ZERO, **counts}


# By hand, from scripted()'s table: the project's minutes with anything in them.
PROJECT_MINUTES = {
    0: (2, ended(completed=1)),  # r1, r2 start; r1 completes
    1: (1, ended(canceled=1, failed=1)),  # r5 starts; r4 canceled, r2 failed
    2: (1, ended()),  # r3 starts (its second dispatch in minute 3 is no start)
    61: (1, ended(completed=1)),  # r6 starts; r3 completes
    66: (0, ended(timed_out=1)),  # r5 times out
}
JOB1_HOURS = {0: (3, ended(completed=1, failed=1)), 1: (1, ended(completed=1))}


async def projected(tmp_path: Path, records: list[Record], cuts: int = 1) -> AsyncEngine:
    engine = await engine_at(tmp_path / "metrics.db")
    size = max(1, math.ceil(len(records) / cuts))
    for i in range(0, len(records), size):
        async with engine.begin() as conn:
            await apply_batch(conn, TOPIC, records[i:i + size])
    return engine


async def rollups(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return sorted(tuple(r) for r in await conn.execute(
            select(metric_rollups).order_by(*metric_rollups.primary_key.columns)))


def minute_of(moment: datetime) -> int:
    return int((moment - T0).total_seconds()) // 60


async def test_minute_buckets_totals_and_percentiles_equal_the_hand_counted(
        tmp_path: Path) -> None:
    engine = await projected(tmp_path, scripted().records)
    try:
        plan = plan_of(2 * 3600, 60, NOW)
        assert plan.span == 60 and plan.end == plan.start + plan.buckets * 60
        found = await read_metrics(engine, "p", None, plan)
        got = {minute_of(datetime.fromtimestamp(b.start, T0.tzinfo)): (b.started, b.ended)
               for b in found.buckets if b.started or any(b.ended.values())}
        assert got == PROJECT_MINUTES
        assert found.started == 5
        assert found.ended == ended(completed=2, failed=1, timed_out=1, canceled=1)
        assert found.success_rate == 2 / 4
        # Durations 30 and 3490; waits 5, 5, 10, 10, 10 (nearest rank).
        assert close(found.durations, {"p50": 30, "p95": 3490, "p99": 3490})
        assert close(found.waits, {"p50": 10, "p95": 10, "p99": 10})
    finally:
        await engine.dispose()


def close(got: dict[str, float | None], want: dict[str, float]) -> bool:
    return got.keys() == want.keys() and all(
        got[k] is not None and abs(got[k] - v) <= histogram.ERROR * v  # type: ignore[operator]
        for k, v in want.items())


async def test_a_job_in_hour_and_day_buckets(tmp_path: Path) -> None:
    engine = await projected(tmp_path, scripted().records)
    try:
        hours = await read_metrics(engine, "p", "j1", plan_of(2 * 3600, 3600, NOW))
        assert hours.buckets[0].start == int(T0.timestamp()) - 3600  # rounded out
        got = {i - 1: (b.started, b.ended) for i, b in enumerate(hours.buckets)
               if b.started or any(b.ended.values())}
        assert got == JOB1_HOURS and hours.success_rate == 2 / 3
        assert close(hours.waits, {"p50": 10, "p95": 10, "p99": 10})  # 10, 5, 10, 10
        days = await read_metrics(engine, "p", "j1", plan_of(2 * 86400, 86400, NOW))
        assert (days.started, days.ended) == (4, ended(completed=2, failed=1))
        assert [b.start for b in days.buckets if b.started] == [int(T0.timestamp())]
        other = await read_metrics(engine, "q", None, plan_of(3600, 60, at(60)))
        assert other.started == 1 and other.ended == ended(completed=1)
        nobody = await read_metrics(engine, "p", "nope", plan_of(3600, 60, NOW))
        assert (nobody.started, nobody.success_rate, nobody.durations["p50"]) == (0, None,
                                                                                  None)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("cuts", [2, 5, 11, 1000])
async def test_any_cut_into_batches_writes_the_same_rollups(tmp_path: Path,
                                                            cuts: int) -> None:
    records = scripted().records
    whole = await projected(tmp_path / "whole", records)
    cut = await projected(tmp_path / "cut", records, cuts)
    try:
        assert await rollups(cut) == await rollups(whole)
    finally:
        await whole.dispose()
        await cut.dispose()


async def test_a_batch_offered_again_counts_nothing_twice(tmp_path: Path) -> None:
    records = scripted().records
    engine = await projected(tmp_path, records)
    try:
        before = await rollups(engine)
        async with engine.begin() as conn:
            assert (await apply_batch(conn, TOPIC, records)).events == 0
        # And repeats within one batch (a processor that crashed mid-command wrote them
        # twice), in a second store.
        assert await rollups(engine) == before
    finally:
        await engine.dispose()
    doubled = [r for record in records for r in (record, record)]
    twice = await projected(tmp_path / "twice", doubled, cuts=3)
    try:
        assert await rollups(twice) == before
    finally:
        await twice.dispose()


async def test_poison_isolation_keeps_the_counts_of_the_records_it_applies(
        tmp_path: Path) -> None:
    records = scripted().records
    # A trigger of run r1 again, by another job (the runs table refuses it): the batch
    # fails, is applied record by record, and that record alone is passed over.
    clash = Script()
    clash.emit("jx", "r1", RunTriggered(payload=0), 30)
    poisoned = [*records[:10], (0, 10, clash.records[0][2]),
                *((p, o + 1, v) for p, o, v in records[10:])]
    engine = await engine_at(tmp_path / "poisoned.db")
    clean = await projected(tmp_path / "clean", records)
    try:
        projector = Projector(engine, TOPIC, Letters(), "t.deadletter")
        await projector.project(poisoned)
        assert projector.poisoned == 1
        assert await rollups(engine) == await rollups(clean)
    finally:
        await engine.dispose()
        await clean.dispose()


# --- the plan and the query --------------------------------------------------------

def test_the_plan_rounds_out_to_whole_buckets_and_refuses_too_many() -> None:
    now = T0 + timedelta(minutes=90, seconds=5)
    plan = plan_of(3600, 3600, now)
    assert plan == Plan(int(T0.timestamp()), int(T0.timestamp()) + 7200, 3600, 3600)
    assert plan.buckets == 2
    assert plan_of(86400, 300, now).span == 60
    assert plan_of(7 * 86400, 6 * 3600, now).span == 3600
    assert plan_of(90 * 86400, 2 * 86400, now).span == 86400
    # A day of minutes is the most; rounded out, the answer holds one more.
    assert plan_of(86400, 60, now).buckets == MAX_BUCKETS + 1
    for window, bucket, reason in ((60, 3600, "longer than the window"),
                                   (2 * 86400, 60, "at most 1440"),
                                   (30 * 86400, 1800, "7 days")):
        with pytest.raises(TooFine, match=reason):
            plan_of(window, bucket, now)


async def test_the_query_reads_the_rollups_through_their_primary_key(
        tmp_path: Path) -> None:
    engine = await projected(tmp_path, scripted().records)
    try:
        compiled = ROWS_QUERY.compile(dialect=engine.dialect)
        params = {"project_id": "p", "job_id": "", "span": 60, "start": 0, "end": 10 ** 10}
        values = tuple(params[name] for name in compiled.positiontup or [])
        async with engine.connect() as conn:
            plan = [row[-1] for row in await conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + str(compiled), values)]
        assert len(plan) == 1 and plan[0].startswith("SEARCH metric_rollups USING INDEX"), plan
        assert "bucket_start>? AND bucket_start<?" in plan[0], plan
        # The projector's read of the rows a batch adds to probes the same key.
        lists = {"project_id": ["p"], "job_id": ["", "j1"], "span": [60, 3600],
                 "bucket_start": [0, 60]}
        sql = str(rollups_module._CURRENT.params(**lists).compile(
            dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        async with engine.connect() as conn:
            plan = [row[-1] for row in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
        assert plan[0].startswith("SEARCH metric_rollups USING INDEX"), (sql, plan)
        assert "bucket_start=?" in plan[0], plan
    finally:
        await engine.dispose()


@pytest.mark.parametrize("factor", [0, 10 ** 9])
async def test_the_rollups_read_by_job_or_all_at_once_alike(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factor: int) -> None:
    # Factor 0: every read of stored rollups goes job by job; 10**9: all in one query.
    records = scripted().records
    whole = await projected(tmp_path / "whole", records, cuts=3)
    monkeypatch.setattr(rollups_module, "CROSS_FACTOR", factor)
    other = await projected(tmp_path / "other", records, cuts=3)
    try:
        assert await rollups(other) == await rollups(whole)
        assert len(await rollups(other)) > 20
    finally:
        await whole.dispose()
        await other.dispose()
