"""The analytics views on SQLite and PostgreSQL: their columns (the contract analysts rely
on) and their values for a scripted history."""

from pathlib import Path

import pytest
from sqlalchemy import text

from events.types import (
    AttemptFailure,
    JobCreated,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunTriggered,
)
from tests.unit.domain_support import spec
from tests.unit.test_projections import apply, engine_at, record

V1_RUNS = ["run_id", "project_id", "job_id", "job_version", "status", "attempt",
           "max_attempts", "priority", "triggered_by", "created_by", "batch_id",
           "concurrency_key", "correlation_id", "idempotency_key", "parent_run_id",
           "continuation_of", "lineage_depth", "run_type", "created_at", "scheduled_at",
           "started_at", "finished_at", "next_retry_at", "expires_at", "duration_secs",
           "outcome_code", "payload", "result", "error", "metadata", "tags", "counters",
           "execution_trace"]
V1_RUN_EVENTS = ["project_id", "job_id", "seq", "run_id", "type", "version", "event_id",
                 "command_id", "occurred_at", "data"]
V1_JOB_STATS_DAILY = ["project_id", "job_id", "day", "runs", "completed", "failed",
                      "timed_out", "crashed", "canceled", "expired", "avg_duration_secs"]
V1_JOB_METRICS_DAILY = ["project_id", "job_id", "day", "started", "completed", "failed",
                        "timed_out", "crashed", "canceled", "expired"]

# Every test here runs on both stores (tests.stores).
pytestmark = pytest.mark.usefixtures("store")

FAILURE = AttemptFailure(kind="http_status", message="500", retryable=False)
# Made at seconds 2 and 3; run a: started at 4, completed at 10 (6 s); run b: failed.
HISTORY = [record(1, None, JobCreated(spec=spec())),
           record(2, "a", RunTriggered(payload=1)),
           record(3, "b", RunTriggered(payload=2)),
           record(4, "a", RunDispatched(attempt=1, endpoint_url="http://x")),
           record(5, "b", RunDispatched(attempt=1, endpoint_url="http://x")),
           record(10, "a", RunCompleted(attempt=1), offset=5),
           record(11, "b", RunFailed(attempt=1, failure=FAILURE), offset=6)]


async def test_the_views_keep_their_columns_and_count_by_hand(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "views.db")
    try:
        await apply(engine, HISTORY)
        async with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                # Days are UTC days whatever the analyst's session says (runs made at
                # 00:00:02 UTC were made on the 31st in New York).
                await conn.exec_driver_sql("SET TIME ZONE 'America/New_York'")
            columns = {}
            for view in ("v1_runs", "v1_run_events", "v1_job_stats_daily"):
                result = await conn.execute(text(f"SELECT * FROM {view}"))
                columns[view] = (list(result.keys()), result.fetchall())
        assert columns["v1_runs"][0] == V1_RUNS
        assert columns["v1_run_events"][0] == V1_RUN_EVENTS
        assert columns["v1_job_stats_daily"][0] == V1_JOB_STATS_DAILY
        runs = {row.run_id: row for row in columns["v1_runs"][1]}
        assert runs["a"].status == "completed" and abs(runs["a"].duration_secs - 6) < 1e-3
        assert runs["b"].status == "failed"
        assert len(columns["v1_run_events"][1]) == 7
        [day] = columns["v1_job_stats_daily"][1]
        # A date on PostgreSQL, text on SQLite: the same day.
        assert (str(day.day), day.runs, day.completed, day.failed, day.canceled) == (
            "2026-01-01", 2, 1, 1, 0)
        assert abs(day.avg_duration_secs - 6) < 1e-3
    finally:
        await engine.dispose()


async def test_the_daily_metrics_view_counts_by_hand_and_outlives_the_purge(
        tmp_path: Path) -> None:
    from datetime import timedelta

    from projections.retention import sweep
    from tests.unit.domain_support import at

    engine = await engine_at(tmp_path / "metrics-view.db")
    try:
        await apply(engine, HISTORY)
        query = text("SELECT * FROM v1_job_metrics_daily")

        async def days() -> list[tuple[object, ...]]:
            async with engine.connect() as conn:
                if engine.dialect.name == "postgresql":
                    await conn.exec_driver_sql("SET TIME ZONE 'America/New_York'")
                result = await conn.execute(query)
                assert list(result.keys()) == V1_JOB_METRICS_DAILY
                return [(str(row.day), *row[3:]) for row in result]

        # Both runs started, one completed and one failed, on 2026-01-01 (UTC).
        counted = [("2026-01-01", 2, 1, 1, 0, 0, 0, 0)]
        assert await days() == counted
        # Past the default retention (30 days) both runs are purged: the runs' view loses
        # them, this one does not.
        assert sorted(await sweep(engine, at(11) + timedelta(days=31))) == ["a", "b"]
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT * FROM v1_job_stats_daily"))).all() == []
        assert await days() == counted
    finally:
        await engine.dispose()
