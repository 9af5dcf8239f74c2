"""A job's health (projections.health) against values computed by hand, and its queue
depth kept by the projector."""

from datetime import timedelta
from pathlib import Path

import pytest

from events.types import JobCreated, RunCanceled, RunDispatched, RunTriggered
from projections.health import RunOutline, health_of, job_health, percentile
from tests.unit.domain_support import at, spec
from tests.unit.test_projections import apply, engine_at, record

WEEK = timedelta(days=7)


def outline(n: int, status: str, secs: float | None = None,
            finished: float | None = None) -> RunOutline:
    started = at(n * 100)
    return RunOutline(id=f"r{n}", status=status, created_at=at(n * 100 - 1),
                      started_at=started if secs is not None or finished else None,
                      finished_at=None if finished is None and secs is None else
                      at(n * 100 + (secs if secs is not None else finished or 0)))


def test_scores_by_hand() -> None:
    made = [outline(1, "completed", 10), outline(2, "failed", finished=5),
            outline(3, "completed", 20), outline(4, "completed", 30),
            outline(5, "timed_out", finished=60), outline(6, "completed", 40),
            outline(7, "canceled", finished=1), outline(8, "queued")]
    health = health_of(WEEK, made, queue_depth=3)
    assert health.total_runs == 8
    assert health.counts == {"completed": 4, "failed": 1, "timed_out": 1, "crashed": 0,
                             "canceled": 1, "expired": 0}
    # Outcomes in the order they ended: ok, fail, ok, ok, fail, ok.
    assert health.success_rate is not None and abs(health.success_rate - 4 / 6) < 1e-9
    assert health.stability is not None and abs(health.stability - (1 - 4 / 5)) < 1e-9
    assert health.health_score == round(100 * 4 / 6 * (0.7 + 0.3 * 0.2)) == 51
    assert health.failure_streak == 0
    assert health.avg_duration_secs == 25 and health.p95_duration_secs == 40
    assert health.queue_depth == 3 and health.last_run is not None
    assert health.last_run.id == "r8"


def test_a_failure_streak_counts_back_from_the_latest_ending() -> None:
    made = [outline(1, "completed", 10), outline(2, "failed", finished=5),
            outline(3, "crashed", finished=5)]
    health = health_of(WEEK, made, 0)
    assert health.failure_streak == 2 and health.stability == 0.5
    always = health_of(WEEK, [outline(1, "failed", finished=1),
                              outline(2, "failed", finished=1)], 0)
    assert (always.stability, always.health_score) == (1.0, 0)  # steady failure scores 0


def test_no_ended_run_scores_minus_one() -> None:
    empty = health_of(WEEK, [], 0)
    assert (empty.health_score, empty.success_rate, empty.last_run) == (-1, None, None)
    waiting = health_of(WEEK, [outline(1, "queued"), outline(2, "canceled", finished=1)], 2)
    assert waiting.health_score == -1 and waiting.total_runs == 2


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([float(v) for v in range(1, 101)], 0.95) == 95.0


@pytest.mark.usefixtures("store")  # on both stores (tests.stores)
async def test_queue_depth_follows_the_runs_that_wait(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "health.db")
    try:
        await apply(engine, [record(1, None, JobCreated(spec=spec())),
                             *(record(1 + n, f"r{n}", RunTriggered(payload=n))
                               for n in range(1, 5)),
                             record(6, "r1", RunDispatched(attempt=1, endpoint_url="http://x")),
                             record(7, "r2", RunCanceled())])
        health = await job_health(engine, "p", "j", WEEK, at(10))
        assert health.queue_depth == 2 and health.total_runs == 4
        assert health.counts["canceled"] == 1
    finally:
        await engine.dispose()
