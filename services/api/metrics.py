"""GET /v1/metrics: the key's project's runs (or one job's) over a window, in buckets."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import Parameter

from projections.histogram import ERROR
from projections.metrics import TooFine, plan_of, read_metrics
from schemas.api import EndedRuns, Metrics, MetricsBucket, Percentiles
from services.api.auth import caller_of
from services.api.context import ApiContext
from services.api.errors import invalid
from services.api.job_health import UNITS, WINDOW_PATTERN, window_of
from services.api.jobs import find_job


def bucket_secs(text: str) -> int:
    """The length of a ``bucket`` parameter (Litestar checks the pattern first; this
    check keeps the error naming the field if it ever does not)."""
    if re.fullmatch(WINDOW_PATTERN, text) is None:
        raise invalid("bucket", "a number and a unit: 1m, 5m, 1h, 1d")
    return int(text[:-1]) * UNITS[text[-1]]


@get("/v1/metrics", summary="Runs started and ended, success rate, duration and queue wait "
                            "percentiles over a window, per bucket")
async def read_metrics_route(
    request: Request[Any, Any, Any],
    job: Annotated[str | None, Parameter(
        description="a job's id or slug (default: the whole project)", min_length=1,
        max_length=64)] = None,
    window: Annotated[str, Parameter(
        description="30m, 24h, 7d; a longer one than 90d counts as 90d (the answer's "
                    "window says which was used)", pattern=WINDOW_PATTERN)] = "24h",
    bucket: Annotated[str, Parameter(
        description="1m, 5m, 1h, 1d: at most the window, at most 1440 of them in it, and "
                    "buckets that are not whole hours over at most 7 days",
        pattern=WINDOW_PATTERN)] = "1h",
) -> Metrics:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    span, window = window_of(window)
    try:
        plan = plan_of(int(span.total_seconds()), bucket_secs(bucket), datetime.now(UTC))
    except TooFine as exc:
        raise invalid("bucket", str(exc)) from None
    job_id = None if job is None else (await find_job(ctx, key, job)).id
    found = await read_metrics(ctx.engine, key.project_id, job_id, plan)
    covered = plan.end - plan.start
    ended = sum(found.ended.values())
    return Metrics(
        job_id=job_id, window=window, bucket=bucket,
        start=datetime.fromtimestamp(plan.start, UTC), end=datetime.fromtimestamp(plan.end, UTC),
        started=found.started, ended=EndedRuns(**found.ended),
        success_rate=found.success_rate, throughput_per_sec=ended / covered,
        duration_secs=Percentiles(**found.durations), queue_wait_secs=Percentiles(**found.waits),
        relative_error=ERROR,
        buckets=[MetricsBucket(start=datetime.fromtimestamp(b.start, UTC), started=b.started,
                               ended=EndedRuns(**b.ended),
                               throughput_per_sec=sum(b.ended.values()) / plan.bucket)
                 for b in found.buckets])


__all__ = ["read_metrics_route"]
