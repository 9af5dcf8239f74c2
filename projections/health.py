"""A job's health over a window (seed 002's GET /v1/jobs/{id}/health), from the read
model, in bounded work whatever the job's backlog, and through the retention sweep:

- Counts by end state, ``success_rate``, and the durations of completed runs come from
  the job's rollups (``metric_rollups``, never purged; projections.metrics reads and adds
  them up): they count the runs that ENDED in the window (by ``finished_at``, the
  rollups' instant), rounded out to whole UTC minutes, not the runs made in it. The
  window is read from the longest rows that fit it (``cover``): at most 255 rows for 90
  days. ``total_runs`` is those ended runs, in any end state.
- ``stability``, ``failure_streak`` and ``last_run`` come from the job's latest runs made
  in the window, at most LATEST of them, read newest first through
  ix_runs_project_job_created; purged runs are no longer among them. ``latest_runs`` and
  ``stability_runs`` say how many were read and how many of them were judged.
- ``queue_depth`` is ``job_waiting``'s count, kept per event.

Each figure:

- ``success_rate``: projections.outcomes (completed over the runs that ended with an
  outcome); null without any.
- ``stability``: 1 minus the share of changes of outcome (success to failure or back)
  between consecutive ended runs, in the order they ended: a job that alternates is
  unstable even at a 50 % success rate. 1 with one ended run; null with none read.
- ``health_score``: round(100 * success_rate * (0.7 + 0.3 * stability)), or -1 when no
  run ended with an outcome in the window. When none of the runs read judges stability
  (they were purged, or made before the window), it counts as 1.
- ``failure_streak``: ended runs that failed in a row, counted back from the latest.
- durations (started to finished, of completed runs): the average and p95 are read from
  the rollups' histograms, each within histogram.ERROR of the exact value.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections import histogram
from projections.metrics import Totals, read_rows, totals_of
from projections.outcomes import JUDGED, success_rate
from projections.rollups import ENDED, SPANS
from projections.rows import aware
from projections.tables import job_waiting, runs

STATUSES = ENDED
# The most runs read for stability, failure_streak and last_run.
LATEST = 1000
MINUTE = 60

__all__ = ["JUDGED", "LATEST", "STATUSES", "Health", "RunOutline", "cover", "health_of",
           "job_health", "percentile"]


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
    latest_runs: int  # the runs read for stability (at most LATEST)
    stability_runs: int  # of them, the endings with an outcome it was judged over


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile: the smallest value with ``share`` of them at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def cover(start: int, end: int, spans: tuple[int, ...] = SPANS) -> list[tuple[int, int, int]]:
    """[start, end) (whole minutes, Unix seconds) as (span, from, to) ranges of rollup
    rows, the longest rows that fit: minutes up to the first whole hour, hours up to the
    first midnight, days, and back down at the end (pure)."""
    *finer, span = spans
    if not finer:
        return [(span, start, end)] if start < end else []
    first, last = -(-start // span) * span, end // span * span
    if first >= last:
        return cover(start, end, tuple(finer))
    return [*cover(start, first, tuple(finer)), (span, first, last),
            *cover(last, end, tuple(finer))]


def health_of(window: timedelta, totals: Totals, latest: list[RunOutline],
              queue_depth: int) -> Health:
    """The health of a job whose rollups over the window add up to ``totals`` and whose
    latest runs made in it are ``latest`` (pure)."""
    ended = sorted((r for r in latest if r.status in JUDGED and r.finished_at is not None),
                   key=lambda r: (r.finished_at, r.id))
    outcomes = [r.status == "completed" for r in ended]
    stability = None
    if outcomes:
        flips = sum(a != b for a, b in pairwise(outcomes))
        stability = 1.0 if len(outcomes) == 1 else 1 - flips / (len(outcomes) - 1)
    success = success_rate(totals.ended)
    score = -1 if success is None else round(
        100 * success * (0.7 + 0.3 * (1.0 if stability is None else stability)))
    streak = 0
    for ok in reversed(outcomes):
        if ok:
            break
        streak += 1
    counts = {status: totals.ended[status] for status in STATUSES}
    return Health(
        window_secs=int(window.total_seconds()), total_runs=sum(counts.values()),
        counts=counts, success_rate=success, stability=stability, health_score=score,
        failure_streak=streak, avg_duration_secs=histogram.mean(totals.durations),
        p95_duration_secs=histogram.percentile(totals.durations, 0.95),
        queue_depth=queue_depth,
        last_run=max(latest, key=lambda r: (r.created_at, r.id)) if latest else None,
        latest_runs=len(latest), stability_runs=len(outcomes))


# Built once: a backward range read of ix_runs_project_job_created, stopped at LATEST.
LATEST_QUERY: Select[Any] = (
    select(runs.c.id, runs.c.status, runs.c.created_at, runs.c.started_at,
           runs.c.finished_at)
    .where((runs.c.project_id == bindparam("project_id"))
           & (runs.c.job_id == bindparam("job_id"))
           & (runs.c.created_at > bindparam("since")))
    .order_by(runs.c.created_at.desc(), runs.c.id.desc())
    .limit(LATEST))


async def read_totals(conn: AsyncConnection, project_id: str, job_id: str, start: int,
                      end: int) -> Totals:
    rows = [row for span, lo, hi in cover(start, end)
            for row in await read_rows(conn, project_id, job_id, span, lo, hi)]
    return totals_of(rows)


async def job_health(engine: AsyncEngine, project_id: str, job_id: str, window: timedelta,
                     now: datetime) -> Health:
    at = int(now.astimezone(UTC).timestamp())
    # Rounded out to whole minutes, the finest rollup rows, as /v1/metrics rounds out.
    start = (at - int(window.total_seconds())) // MINUTE * MINUTE
    end = at // MINUTE * MINUTE + MINUTE
    params = {"project_id": project_id, "job_id": job_id, "since": now - window}
    async with engine.connect() as conn:
        totals = await read_totals(conn, project_id, job_id, start, end)
        latest = [RunOutline(str(r.id), str(r.status), aware(r.created_at),
                             aware(r.started_at), aware(r.finished_at))
                  for r in await conn.execute(LATEST_QUERY, params)]
        depth = (await conn.execute(select(job_waiting.c.running)
                                    .where(job_waiting.c.job_id == job_id))).scalar()
    return health_of(window, totals, latest, int(depth or 0))
