"""GET /v1/metrics from the rollups (projections.rollups): a project's or a job's runs
started and ended per bucket, its success rate, and percentiles of duration and queue
wait, read from at most MAX_ROWS rollup rows (and a bucket's) through their primary key.
The cost does not depend on how many runs there were.

The window is rounded out to whole buckets, aligned on the Unix epoch (so on UTC
midnights and hours): from the start of the bucket that holds ``now - window`` to the end
of the bucket that holds ``now``. Each bucket is read from the longest rollup span that
divides it (a day, an hour or a minute).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections import histogram
from projections.outcomes import success_rate
from projections.rollups import ENDED, SPANS, WHOLE_PROJECT
from projections.tables import metric_rollups

# The most buckets a window holds (a day of minutes); the answer holds one more when the
# window is rounded out.
MAX_BUCKETS = 1440
# The most rollup rows a window reads: a week of minute rows (buckets of whole hours read
# hour rows, so 90 days of them stay below it); rounding out adds a bucket's worth.
MAX_ROWS = 7 * 1440
# The shares the percentiles are read at.
SHARES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


class TooFine(ValueError):
    """The window in these buckets is more than one answer reads (the reason says why)."""


@dataclass(frozen=True, slots=True)
class Plan:
    start: int  # Unix seconds, inclusive
    end: int  # exclusive
    bucket: int  # seconds
    span: int  # the rollup rows read: 60, 3600 or 86400

    @property
    def buckets(self) -> int:
        return (self.end - self.start) // self.bucket


def plan_of(window_secs: int, bucket_secs: int, now: datetime) -> Plan:
    """Which buckets and rollup rows answer a window (pure). Raises TooFine."""
    if bucket_secs > window_secs:
        raise TooFine("longer than the window")
    at = int(now.astimezone(UTC).timestamp())
    start = (at - window_secs) // bucket_secs * bucket_secs
    end = at // bucket_secs * bucket_secs + bucket_secs
    span = max(s for s in SPANS if bucket_secs % s == 0)
    # The limits are on the window: rounding out adds a bucket (and its rows) to it.
    if -(-window_secs // bucket_secs) > MAX_BUCKETS:
        raise TooFine(f"the window holds {-(-window_secs // bucket_secs)} of these buckets; "
                      f"at most {MAX_BUCKETS} are answered (use longer buckets or a "
                      "shorter window)")
    if window_secs // span > MAX_ROWS:
        raise TooFine("buckets that are not whole hours are read from minute rollups, at "
                      "most 7 days of them (use whole hours or a shorter window)")
    return Plan(start, end, bucket_secs, span)


@dataclass(slots=True)
class Bucket:
    start: int
    started: int = 0
    ended: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENDED, 0))


@dataclass(frozen=True, slots=True)
class Metrics:
    plan: Plan
    started: int
    ended: dict[str, int]
    success_rate: float | None
    durations: dict[str, float | None]  # p50, p95, p99 in seconds
    waits: dict[str, float | None]
    buckets: list[Bucket]


@dataclass(frozen=True, slots=True)
class Totals:
    """Rollup rows added up: what a job's health reads too (projections.health)."""

    started: int
    ended: dict[str, int]
    durations: histogram.Histogram
    waits: histogram.Histogram


def totals_of(rows: Iterable[Mapping[str, Any]]) -> Totals:
    """Add rollup rows up (pure): counts summed, histograms merged (any spans, as long
    as no two rows cover the same instant)."""
    started, ended = 0, dict.fromkeys(ENDED, 0)
    durations: histogram.Histogram = {}
    waits: histogram.Histogram = {}
    for row in rows:
        started += int(row["started"])
        for status in ENDED:
            ended[status] += int(row[status])
        histogram.merge(durations, row["durations"])
        histogram.merge(waits, row["waits"])
    return Totals(started, ended, durations, waits)


def metrics_of(plan: Plan, rows: list[dict[str, Any]]) -> Metrics:
    """Add rollup rows (of ``plan.span``, within the plan) into its buckets (pure)."""
    buckets = [Bucket(plan.start + i * plan.bucket) for i in range(plan.buckets)]
    for row in rows:
        bucket = buckets[(int(row["bucket_start"]) - plan.start) // plan.bucket]
        bucket.started += int(row["started"])
        for status in ENDED:
            bucket.ended[status] += int(row[status])
    totals = totals_of(rows)
    return Metrics(
        plan=plan, started=totals.started, ended=totals.ended,
        success_rate=success_rate(totals.ended),
        durations={name: histogram.percentile(totals.durations, share)
                   for name, share in SHARES.items()},
        waits={name: histogram.percentile(totals.waits, share)
               for name, share in SHARES.items()},
        buckets=buckets)


# Built once; the primary key (project_id, job_id, span, bucket_start) serves it.
ROWS_QUERY: Select[Any] = (
    select(metric_rollups.c.bucket_start, metric_rollups.c.started,
           *(metric_rollups.c[status] for status in ENDED),
           metric_rollups.c.durations, metric_rollups.c.waits)
    .where((metric_rollups.c.project_id == bindparam("project_id"))
           & (metric_rollups.c.job_id == bindparam("job_id"))
           & (metric_rollups.c.span == bindparam("span"))
           & (metric_rollups.c.bucket_start >= bindparam("start"))
           & (metric_rollups.c.bucket_start < bindparam("end"))))


async def read_rows(conn: AsyncConnection, project_id: str, job_id: str | None, span: int,
                    start: int, end: int) -> list[dict[str, Any]]:
    """The rollup rows of a project (``job_id`` None) or of one of its jobs, of one span,
    whose buckets start in [start, end): one range read of the primary key."""
    params = {"project_id": project_id, "job_id": WHOLE_PROJECT if job_id is None else job_id,
              "span": span, "start": start, "end": end}
    return [dict(row._mapping) for row in await conn.execute(ROWS_QUERY, params)]


async def read_metrics(engine: AsyncEngine, project_id: str, job_id: str | None,
                       plan: Plan) -> Metrics:
    """A project's metrics (``job_id`` None) or one of its jobs'."""
    async with engine.connect() as conn:
        rows = await read_rows(conn, project_id, job_id, plan.span, plan.start, plan.end)
    return metrics_of(plan, rows)
