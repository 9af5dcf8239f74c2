"""Run retention at the API: GET/PUT /v1/retention (admin sets, every key reads), and the
404 RUN_PURGED of a run the retention sweep took (``purged``)."""

from datetime import UTC, datetime
from typing import Any

from litestar import Request, get, put

from projections.retention import purged_at, retention_of
from schemas.api import RetentionRequest, RetentionResponse
from services.api.auth import caller_of
from services.api.body import decode_body
from services.api.context import ApiContext
from services.api.errors import ApiError, ErrorDetail, echo
from services.api.ids import new_command_id
from services.domain import SetProjectRetention, project_stream

PURGED_CODE = "RUN_PURGED"


async def purged(ctx: ApiContext, project_id: str, run_id: str) -> ApiError | None:
    """The 404 for a run of the project that was purged, or None if it was not."""
    when = await purged_at(ctx.engine, project_id, run_id)
    if when is None:
        return None
    return ApiError(404, f"run {echo(run_id)!r} was purged at {when.isoformat()}: its "
                         "retention ended (see GET /v1/retention); the log keeps its events",
                    code=PURGED_CODE, details=[ErrorDetail(field="run_id", reason="purged")])


async def _answer(ctx: ApiContext, project_id: str) -> RetentionResponse:
    days, since = await retention_of(ctx.engine, project_id)
    return RetentionResponse(run_retention_days=days, default=since is None, since=since)


@get("/v1/retention", summary="How long the project's runs are kept after they end")
async def read_retention(request: Request[Any, Any, Any]) -> RetentionResponse:
    key = caller_of(request)
    return await _answer(request.app.state.ctx, key.project_id)


@put("/v1/retention", summary="Set how long the project's runs are kept (admin)")
async def set_retention(request: Request[Any, Any, Any]) -> RetentionResponse:
    key = caller_of(request, "admin")
    data = await decode_body(request, RetentionRequest)
    ctx: ApiContext = request.app.state.ctx
    await ctx.execute(SetProjectRetention(
        command_id=new_command_id(), project_id=key.project_id,
        job_id=project_stream(key.project_id), issued_at=datetime.now(UTC),
        actor=f"{key.project_id}:{key.role}", run_retention_days=data.run_retention_days),
        location="/v1/retention")
    return await _answer(ctx, key.project_id)


__all__ = ["PURGED_CODE", "purged", "read_retention", "set_retention"]
