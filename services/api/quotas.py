"""Project quotas at the API: GET/PUT /v1/quotas, and the 429 a refused trigger gets
(the check itself: ``services.api.quota_guard``)."""

from datetime import UTC, datetime
from typing import Any

from litestar import Request, get, put

from projections.queries import project_quotas_and_usage
from schemas.api import QuotasRequest, QuotasResponse
from services.api.auth import caller_of
from services.api.body import decode_body
from services.api.context import ApiContext
from services.api.errors import ApiError, ErrorDetail
from services.api.ids import new_command_id
from services.api.quota_guard import today
from services.domain import SetProjectQuotas, project_stream
from services.domain.quotas import QuotaExceeded, Quotas

QUOTA_CODE = "JOB_QUOTA_EXCEEDED"


def quota_error(exceeded: QuotaExceeded) -> ApiError:
    return ApiError(429, exceeded.message, code=QUOTA_CODE,
                    details=[ErrorDetail(field="quota", reason=exceeded.quota)],
                    headers={"Retry-After": str(exceeded.retry_after_secs)})


async def _answer(ctx: ApiContext, project_id: str) -> QuotasResponse:
    day = today()
    quotas, usage = await project_quotas_and_usage(ctx.engine, project_id, day)
    quotas = quotas or Quotas()
    return QuotasResponse(max_queued_runs=quotas.max_queued_runs,
                          max_runs_per_day=quotas.max_runs_per_day,
                          queued_runs=usage.queued_runs, runs_today=usage.runs_today, day=day)


@get("/v1/quotas", summary="The project's quotas and what counts against them")
async def read_quotas(request: Request[Any, Any, Any]) -> QuotasResponse:
    key = caller_of(request)
    return await _answer(request.app.state.ctx, key.project_id)


@put("/v1/quotas", summary="Set the project's quotas (admin)")
async def set_quotas(request: Request[Any, Any, Any]) -> QuotasResponse:
    key = caller_of(request, "admin")
    data = await decode_body(request, QuotasRequest)
    ctx: ApiContext = request.app.state.ctx
    await ctx.execute(SetProjectQuotas(
        command_id=new_command_id(), project_id=key.project_id,
        job_id=project_stream(key.project_id), issued_at=datetime.now(UTC),
        actor=f"{key.project_id}:{key.role}", max_queued_runs=data.max_queued_runs,
        max_runs_per_day=data.max_runs_per_day), location="/v1/quotas")
    ctx.quota_guard.quotas.forget(key.project_id, "")
    return await _answer(ctx, key.project_id)


__all__ = ["quota_error", "read_quotas", "set_quotas"]
