"""GET /v1/jobs/{id_or_slug}/health: seed 002's health score of a job over a window."""

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromPath, Parameter

from projections.health import job_health
from projections.histogram import ERROR
from schemas.api import JobHealth, LastRun
from services.api.auth import caller_of
from services.api.context import ApiContext
from services.api.errors import invalid
from services.api.jobs import find_job

UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = timedelta(days=90)
WINDOW_PATTERN = r"^[1-9][0-9]{0,5}[mhd]$"


def window_of(text: str) -> tuple[timedelta, str]:
    """The window a ``window`` parameter asks for, at most MAX_WINDOW, and how to say it."""
    if re.fullmatch(WINDOW_PATTERN, text) is None:
        raise invalid("window", "a number and a unit: 30m, 24h, 7d")
    window = timedelta(seconds=int(text[:-1]) * UNITS[text[-1]])
    if window > MAX_WINDOW:
        return MAX_WINDOW, f"{MAX_WINDOW.days}d"
    return window, text


@get("/v1/jobs/{id_or_slug:str}/health", summary="A job's health over a window")
async def read_job_health(
    request: Request[Any, Any, Any],
    id_or_slug: FromPath[str],
    window: Annotated[str, Parameter(
        description="30m, 24h, 7d; a longer one than 90d counts as 90d (the answer's "
                    "window says which was used)", pattern=WINDOW_PATTERN)] = "7d",
) -> JobHealth:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    span, window = window_of(window)
    job = await find_job(ctx, key, id_or_slug)
    health = await job_health(ctx.engine, key.project_id, job.id, span, datetime.now(UTC))
    last = health.last_run
    return JobHealth(
        job_id=job.id, window=window, total_runs=health.total_runs,
        **{f"{status}_runs": count for status, count in health.counts.items()},
        success_rate=health.success_rate, stability=health.stability,
        avg_duration_secs=health.avg_duration_secs,
        p95_duration_secs=health.p95_duration_secs, health_score=health.health_score,
        failure_streak=health.failure_streak, queue_depth=health.queue_depth,
        latest_runs=health.latest_runs, stability_runs=health.stability_runs,
        relative_error=ERROR,
        last_run=None if last is None else LastRun(id=last.id, status=last.status,
                                                   created_at=last.created_at,
                                                   finished_at=last.finished_at))


__all__ = ["read_job_health"]
