"""A job's health (projections.health) against values computed by hand: the pure score,
the window read from rollups (runs that ended in it, purged or not), the latest runs'
bound, and its queue depth kept by the projector."""

from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from events.types import JobCreated, RunCanceled, RunDispatched, RunTriggered
from projections import histogram
from projections.health import (
    LATEST,
    LATEST_QUERY,
    STATUSES,
    RunOutline,
    cover,
    health_of,
    job_health,
    percentile,
)
from projections.metrics import Totals
from projections.retention import sweep
from projections.rollups import SPANS
from schemas.api import JobHealth
from tests.unit.domain_support import at, spec
from tests.unit.test_projections import apply, engine_at, record
from tests.unit.test_retention import ENDINGS, Log, applied

WEEK = timedelta(days=7)
DAY = timedelta(days=1)
ERROR = histogram.ERROR


def outline(n: int, status: str, secs: float | None = None,
            finished: float | None = None) -> RunOutline:
    started = at(n * 100)
    return RunOutline(id=f"r{n}", status=status, created_at=at(n * 100 - 1),
                      started_at=started if secs is not None or finished else None,
                      finished_at=None if finished is None and secs is None else
                      at(n * 100 + (secs if secs is not None else finished or 0)))


def rolled_up(made: list[RunOutline]) -> Totals:
    """What the rollups hold for these runs when all ended in the window (as by hand)."""
    ended = {status: sum(r.status == status for r in made) for status in STATUSES}
    durations = histogram.of((r.finished_at - r.started_at).total_seconds() for r in made
                             if r.status == "completed" and r.started_at and r.finished_at)
    return Totals(started=0, ended=ended, durations=durations, waits={})


def near(value: float | None, exact: float) -> bool:
    return value is not None and abs(value - exact) <= ERROR * exact * (1 + 1e-9)


def test_scores_by_hand() -> None:
    made = [outline(1, "completed", 10), outline(2, "failed", finished=5),
            outline(3, "completed", 20), outline(4, "completed", 30),
            outline(5, "timed_out", finished=60), outline(6, "completed", 40),
            outline(7, "canceled", finished=1), outline(8, "queued")]
    health = health_of(WEEK, rolled_up(made), made, queue_depth=3)
    # Runs that ended: the queued r8 has not, so 7 (counting runs made, it was 8).
    assert health.total_runs == 7
    assert health.counts == {"completed": 4, "failed": 1, "timed_out": 1, "crashed": 0,
                             "canceled": 1, "expired": 0}
    # Outcomes in the order they ended: ok, fail, ok, ok, fail, ok.
    assert health.success_rate is not None and abs(health.success_rate - 4 / 6) < 1e-9
    assert health.stability is not None and abs(health.stability - (1 - 4 / 5)) < 1e-9
    assert health.health_score == round(100 * 4 / 6 * (0.7 + 0.3 * 0.2)) == 51
    assert health.failure_streak == 0
    # 10, 20, 30, 40 s: the mean 25 and p95 40, each read from the histogram's bins.
    assert near(health.avg_duration_secs, 25) and near(health.p95_duration_secs, 40)
    assert health.p95_duration_secs == histogram.value_of(histogram.bin_of(40))
    assert health.queue_depth == 3 and health.last_run is not None
    assert health.last_run.id == "r8"
    assert (health.latest_runs, health.stability_runs) == (8, 6)


def test_a_failure_streak_counts_back_from_the_latest_ending() -> None:
    made = [outline(1, "completed", 10), outline(2, "failed", finished=5),
            outline(3, "crashed", finished=5)]
    health = health_of(WEEK, rolled_up(made), made, 0)
    assert health.failure_streak == 2 and health.stability == 0.5
    fails = [outline(1, "failed", finished=1), outline(2, "failed", finished=1)]
    always = health_of(WEEK, rolled_up(fails), fails, 0)
    assert (always.stability, always.health_score) == (1.0, 0)  # steady failure scores 0


def test_no_ended_run_scores_minus_one() -> None:
    empty = health_of(WEEK, rolled_up([]), [], 0)
    assert (empty.health_score, empty.success_rate, empty.last_run) == (-1, None, None)
    made = [outline(1, "queued"), outline(2, "canceled", finished=1)]
    waiting = health_of(WEEK, rolled_up(made), made, 2)
    assert waiting.health_score == -1 and waiting.total_runs == 1  # the canceled one


def test_endings_none_of_the_runs_read_judge_score_at_their_rate() -> None:
    # The rollups hold 3 of 4 completed; the runs read (purged, or made before the
    # window) judge no stability: it counts as 1, 100 * 0.75 * 1.
    counts = {**dict.fromkeys(STATUSES, 0), "completed": 3, "failed": 1}
    health = health_of(WEEK, Totals(0, counts, {}, {}), [], 0)
    assert (health.stability, health.health_score, health.total_runs) == (None, 75, 4)


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([float(v) for v in range(1, 101)], 0.95) == 95.0


@given(st.lists(st.floats(min_value=0, max_value=10 ** 8, allow_nan=False), max_size=100))
def test_the_histograms_mean_is_within_the_stated_error(values: list[float]) -> None:
    found = histogram.mean(histogram.of(values))
    if not values:
        assert found is None
        return
    exact = sum(values) / len(values)
    # Each value is within ERROR of its bin's, or under MIN_SECS and read as 0.
    assert found is not None
    assert abs(found - exact) <= ERROR * exact * (1 + 1e-9) + histogram.MIN_SECS


def test_the_window_is_read_from_the_longest_rows_that_fit() -> None:
    h, d = 3600, 86400
    # 23:58 on day 0 to 01:02 on day 2: two minutes, one day, one hour, two minutes.
    start, end = d - 120, 2 * d + h + 120
    assert cover(start, end) == [(60, start, d), (d, d, 2 * d), (h, 2 * d, 2 * d + h),
                                 (60, 2 * d + h, end)]
    assert cover(600, 1200) == [(60, 600, 1200)]  # within an hour: minutes only
    assert cover(600, 600) == []


@given(st.integers(0, 10 ** 6), st.integers(0, 91 * 1440))
def test_the_cover_tiles_the_window_in_few_rows(start_minute: int, minutes: int) -> None:
    start, end = start_minute * 60, (start_minute + minutes) * 60
    pieces = cover(start, end)
    assert [p[1] for p in pieces[1:]] == [p[2] for p in pieces[:-1]]  # no gap, no overlap
    if pieces:
        assert (pieces[0][1], pieces[-1][2]) == (start, end)
    assert all(span in SPANS and lo % span == 0 and hi % span == 0 and lo < hi
               for span, lo, hi in pieces)
    rows = sum((hi - lo) // span for span, lo, hi in pieces)
    assert rows <= 2 * (59 + 23) + 91  # 90 days and a minute: at most 255 rows


def test_the_answer_states_the_bound() -> None:
    schema = msgspec.json.schema(JobHealth)["$defs"]["JobHealth"]["properties"]
    assert schema["latest_runs"]["maximum"] == LATEST == 1000


async def test_the_latest_runs_are_read_newest_first_through_the_jobs_index(
        tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "plan.db")
    try:
        compiled = LATEST_QUERY.compile(dialect=engine.dialect)
        params = {**compiled.params, "project_id": "p", "job_id": "j",
                  "since": at(0).isoformat()}
        values = tuple(params[name] for name in compiled.positiontup or [])
        async with engine.connect() as conn:
            plan = [row[-1] for row in await conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + str(compiled), values)]
        # One search of the index, in its order: no sort of the job's runs.
        assert plan == ["SEARCH runs USING INDEX ix_runs_project_job_created "
                        "(project_id=? AND job_id=? AND created_at>?)"], plan
    finally:
        await engine.dispose()


ON_BOTH_STORES = pytest.mark.usefixtures("store")  # tests.stores


@ON_BOTH_STORES
async def test_queue_depth_follows_the_runs_that_wait(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "health.db")
    try:
        await apply(engine, [record(1, None, JobCreated(spec=spec())),
                             *(record(1 + n, f"r{n}", RunTriggered(payload=n))
                               for n in range(1, 5)),
                             record(6, "r1", RunDispatched(attempt=1, endpoint_url="http://x")),
                             record(7, "r2", RunCanceled())])
        health = await job_health(engine, "p", "j", WEEK, at(10))
        # Four runs made, one ended (r2, canceled): total_runs counts the ended one.
        assert health.queue_depth == 2 and health.total_runs == 1
        assert health.counts["canceled"] == 1 and health.latest_runs == 4
    finally:
        await engine.dispose()


async def projected(tmp_path: Path, *batches: list[tuple[int, int, bytes]]) -> AsyncEngine:
    engine = await engine_at(tmp_path / "health.db")
    await applied(engine, *batches)
    return engine


def dispatched() -> RunDispatched:
    return RunDispatched(attempt=1, endpoint_url="http://x")


@ON_BOTH_STORES
async def test_counts_are_of_the_runs_that_ended_in_the_window(tmp_path: Path) -> None:
    log = Log()
    engine = await projected(tmp_path, [
        log.job(),
        # Made and ended before the window (which starts at 6400, rounded to 6360).
        log.emit("j", "before", RunTriggered(), at(5000)),
        log.emit("j", "before", dispatched(), at(5010)),
        log.emit("j", "before", ENDINGS["completed"], at(6300)),
        # Made before the window, ended in it: counted, but not read for stability.
        log.emit("j", "late", RunTriggered(), at(5500)),
        log.emit("j", "late", dispatched(), at(5600)),
        log.emit("j", "late", ENDINGS["failed"], at(7000)),
        # Made and ended in it, 90 s from dispatch to end.
        log.emit("j", "inside", RunTriggered(), at(8000)),
        log.emit("j", "inside", dispatched(), at(8010)),
        log.emit("j", "inside", ENDINGS["completed"], at(8100)),
        # Made in it, still queued: read (the last run), not counted.
        log.emit("j", "waiting", RunTriggered(), at(9000))])
    try:
        health = await job_health(engine, "p", "j", timedelta(hours=1), at(10_000))
        # By hand: ended in the window, "late" (failed) and "inside" (completed); by runs
        # made in it (the old rule) it would have been "inside" and "waiting".
        assert health.counts == {**dict.fromkeys(STATUSES, 0), "completed": 1, "failed": 1}
        assert (health.total_runs, health.success_rate) == (2, 0.5)
        # Stability is judged over "inside" alone: 1, so 100 * 0.5 * 1.
        assert (health.stability, health.stability_runs, health.health_score) == (1.0, 1, 50)
        assert health.failure_streak == 0 and health.queue_depth == 1
        assert health.last_run is not None and health.last_run.id == "waiting"
        assert health.latest_runs == 2 and near(health.avg_duration_secs, 90)
    finally:
        await engine.dispose()


@ON_BOTH_STORES
async def test_stability_is_judged_over_the_latest_runs_and_counts_over_all(
        tmp_path: Path) -> None:
    # 1,010 runs a minute apart: the oldest 10 alternate failed/completed, then 999
    # completed, then the newest failed.
    log = Log()
    statuses = ["failed" if i % 2 == 0 else "completed" for i in range(10)]
    statuses += ["completed"] * 999 + ["failed"]
    records = [log.job()]
    for i, status in enumerate(statuses):
        records += log.run(f"r{i:04}", ENDINGS[status], at(600 + 60 * i))
    engine = await projected(tmp_path, *(records[i:i + 1000]
                                         for i in range(0, len(records), 1000)))
    try:
        health = await job_health(engine, "p", "j", WEEK, at(600 + 60 * 1009 + 30))
        # Counts over all 1,010: 5 + 999 completed, 5 + 1 failed.
        assert (health.counts["completed"], health.counts["failed"]) == (1004, 6)
        assert health.total_runs == 1010
        # Stability over the latest 1,000 (r0010..r1009): one change in 999 steps. Over
        # all 1,010 it would be 10 changes in 1,009.
        assert (health.latest_runs, health.stability_runs) == (1000, 1000)
        assert health.stability is not None and abs(health.stability - 998 / 999) < 1e-12
        assert health.health_score == round(100 * 1004 / 1010 * (0.7 + 0.3 * 998 / 999)) == 99
        assert health.failure_streak == 1
        assert health.last_run is not None and health.last_run.id == "r1009"
        assert health.p95_duration_secs == histogram.value_of(histogram.bin_of(30))
    finally:
        await engine.dispose()


@ON_BOTH_STORES
async def test_purged_runs_still_count(tmp_path: Path) -> None:
    log = Log()
    engine = await projected(tmp_path, [
        log.job(), log.retention(1, at(0)),
        *log.run("old1", ENDINGS["completed"], at(100)),
        *log.run("old2", ENDINGS["failed"], at(200)),
        *log.run("new", ENDINGS["completed"], at(0) + 2 * DAY)])
    now = at(0) + 2 * DAY + timedelta(minutes=1)
    try:
        before = await job_health(engine, "p", "j", WEEK, now)
        # ok, fail, ok: 2/3, two changes in two steps, so 100 * 2/3 * 0.7.
        assert (before.stability, before.stability_runs, before.health_score) == (0.0, 3, 47)
        assert sorted(await sweep(engine, now)) == ["old1", "old2"]  # a day's retention
        after = await job_health(engine, "p", "j", WEEK, now)
        # The counts still have the purged runs; stability has "new" alone: 100 * 2/3 * 1.
        assert (after.counts["completed"], after.counts["failed"]) == (2, 1)
        assert after.total_runs == 3 and after.success_rate == 2 / 3
        assert (after.stability, after.stability_runs, after.health_score) == (1.0, 1, 67)
        assert after.last_run is not None and after.last_run.id == "new"
    finally:
        await engine.dispose()
