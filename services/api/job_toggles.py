"""POST /v1/jobs/batch-enable and /v1/jobs/batch-disable: one command per named job.

Each job is its own aggregate (its own partition), so the batch is not atomic: each id is
enabled or disabled on its own, and ``updated`` counts those whose state changed (a job
already in that state, or not found, counts 0).
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

from litestar import Request, post

from projections.queries import find_job as find_job_view
from schemas.api import BatchToggleRequest, BatchToggleResponse
from services.api.auth import caller_of
from services.api.body import decode_body
from services.api.context import ApiContext
from services.api.errors import ApiError
from services.api.ids import new_command_id
from services.config import ApiKey
from services.domain import DisableJob, EnableJob

# Commands in flight per request: enough to overlap their round trips, few enough not to
# crowd out other requests.
TOGGLES_AT_ONCE = 50


async def _toggle(ctx: ApiContext, key: ApiKey, id_or_slug: str, enable: bool) -> int:
    view = await find_job_view(ctx.engine, key.project_id, id_or_slug)
    if view is None or view.deleted_at is not None or view.enabled == enable:
        return 0
    kind = EnableJob if enable else DisableJob
    command = kind(command_id=new_command_id(), project_id=key.project_id, job_id=view.id,
                   issued_at=datetime.now(UTC), actor=key.project_id + ":" + key.role)
    try:
        outcome = await ctx.execute(command)
    except ApiError as exc:
        if exc.status == 404:  # deleted meanwhile
            return 0
        raise
    # A repeat records nothing: the job's seq did not move.
    return 1 if outcome.seq > view.last_seq else 0


async def _batch(request: Request[Any, Any, Any], enable: bool) -> BatchToggleResponse:
    key = caller_of(request, "operator")
    data = await decode_body(request, BatchToggleRequest)
    ctx: ApiContext = request.app.state.ctx
    ids = list(dict.fromkeys(data.ids))  # a job named twice is toggled once
    room = asyncio.Semaphore(TOGGLES_AT_ONCE)

    async def one(id_or_slug: str) -> int:
        async with room:
            return await _toggle(ctx, key, id_or_slug, enable)

    done = await asyncio.gather(*(one(i) for i in ids))
    return BatchToggleResponse(updated=sum(done))


@post("/v1/jobs/batch-enable", status_code=200, summary="Enable jobs by id or slug")
async def batch_enable(request: Request[Any, Any, Any]) -> BatchToggleResponse:
    return await _batch(request, True)


@post("/v1/jobs/batch-disable", status_code=200, summary="Disable jobs by id or slug")
async def batch_disable(request: Request[Any, Any, Any]) -> BatchToggleResponse:
    return await _batch(request, False)


__all__ = ["batch_disable", "batch_enable"]
