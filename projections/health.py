"""A job's health over a window (seed 002's GET /v1/jobs/{id}/health), from the read
model: the runs the job made in the window, one indexed range read
(ix_runs_project_job_created), and its queue depth from ``job_waiting``.

- ``success_rate``: completed / runs that ended with an outcome (completed, failed,
  timed_out, crashed); canceled and expired runs were stopped, not judged. Null without
  any.
- ``stability``: 1 minus the share of changes of outcome (success to failure or back)
  between consecutive ended runs, in the order they ended: a job that alternates is
  unstable even at a 50 % success rate. 1 with one ended run.
- ``health_score``: round(100 * success_rate * (0.7 + 0.3 * stability)), or -1 when no
  run ended with an outcome in the window: only successes score, and a job whose
  outcomes flip keeps 70 % of its success rate.
- ``failure_streak``: ended runs that failed in a row, counted back from the latest.
- durations (started to finished) are of completed runs.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.rows import aware
from projections.tables import job_waiting, runs

JUDGED = ("completed", "failed", "timed_out", "crashed")
STATUSES = (*JUDGED, "canceled", "expired")


@dataclass(frozen=True, slots=True)
class RunOutline:
    id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Health:
    window_secs: int
    total_runs: int
    counts: dict[str, int]
    success_rate: float | None
    stability: float | None
    health_score: int
    failure_streak: int
    avg_duration_secs: float | None
    p95_duration_secs: float | None
    queue_depth: int
    last_run: RunOutline | None


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile: the smallest value with ``share`` of them at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def health_of(window: timedelta, made: list[RunOutline], queue_depth: int) -> Health:
    """The health of a job whose runs made in the window are ``made`` (pure)."""
    counts = {status: sum(r.status == status for r in made) for status in STATUSES}
    ended = sorted((r for r in made if r.status in JUDGED and r.finished_at is not None),
                   key=lambda r: (r.finished_at, r.id))
    outcomes = [r.status == "completed" for r in ended]
    success = None if not outcomes else sum(outcomes) / len(outcomes)
    stability = None
    if outcomes:
        flips = sum(a != b for a, b in pairwise(outcomes))
        stability = 1.0 if len(outcomes) == 1 else 1 - flips / (len(outcomes) - 1)
    score = -1 if success is None or stability is None else round(
        100 * success * (0.7 + 0.3 * stability))
    streak = 0
    for ok in reversed(outcomes):
        if ok:
            break
        streak += 1
    durations = [(r.finished_at - r.started_at).total_seconds() for r in made
                 if r.status == "completed" and r.started_at and r.finished_at]
    return Health(
        window_secs=int(window.total_seconds()), total_runs=len(made), counts=counts,
        success_rate=success, stability=stability, health_score=score,
        failure_streak=streak,
        avg_duration_secs=sum(durations) / len(durations) if durations else None,
        p95_duration_secs=percentile(durations, 0.95), queue_depth=queue_depth,
        last_run=max(made, key=lambda r: (r.created_at, r.id)) if made else None)


async def job_health(engine: AsyncEngine, project_id: str, job_id: str, window: timedelta,
                     now: datetime) -> Health:
    query = (select(runs.c.id, runs.c.status, runs.c.created_at, runs.c.started_at,
                    runs.c.finished_at)
             .where((runs.c.project_id == project_id) & (runs.c.job_id == job_id)
                    & (runs.c.created_at > now - window)))
    async with engine.connect() as conn:
        made = [RunOutline(str(r.id), str(r.status), aware(r.created_at), aware(r.started_at),
                           aware(r.finished_at)) for r in await conn.execute(query)]
        depth = (await conn.execute(select(job_waiting.c.running)
                                    .where(job_waiting.c.job_id == job_id))).scalar()
    return health_of(window, made, int(depth or 0))
