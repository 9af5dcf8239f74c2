"""Cancel all waiting runs of the project, of a job, or of a job version, as a tracked
operation (seed 000's cancel-all; canceledCount when done): the project's stream records
it and asks each job for its part; each job cancels its waiting runs a chunk per command.
The answer waits (bounded) for the operation to finish: 200 with the count, or 202 with
where to follow it."""

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath

from projections.operations import OperationView, get_operation, live_job_ids
from schemas.api import CancelWaitingRequest, OperationResponse
from services.api.auth import caller_of
from services.api.body import decode_body
from services.api.context import ApiContext, StillPending
from services.api.errors import invalid, not_found
from services.api.ids import new_command_id
from services.api.jobs import find_job
from services.domain.commands import StartOperation, project_stream

# The most jobs one project-wide operation covers.
MAX_OPERATION_JOBS = 10_000
_POLL_SECS = 0.1


def operation_response(view: OperationView) -> OperationResponse:
    done = view.finished_at is not None
    return OperationResponse(id=view.id, kind=view.kind,
                             status="completed" if done else "running",
                             canceled_count=view.canceled, jobs_total=view.jobs_total,
                             jobs_done=view.jobs_done, job_version=view.job_version,
                             created_at=view.created_at, finished_at=view.finished_at,
                             created_by=view.created_by)


@post("/v1/runs/cancel-waiting", status_code=200,
      summary="Cancel every waiting run of the project, a job, or a job version")
async def cancel_waiting(request: Request[Any, Any, Any]) -> Response[OperationResponse]:
    key = caller_of(request, "operator")
    data = await decode_body(request, CancelWaitingRequest, optional=True)
    ctx: ApiContext = request.app.state.ctx
    if data.job_version is not None and data.job_id is None:
        raise invalid("job_version", "needs job_id")
    if data.job_id is not None:
        job_ids = [(await find_job(ctx, key, data.job_id, fresh=True)).id]
    else:
        job_ids = await live_job_ids(ctx.engine, key.project_id, MAX_OPERATION_JOBS + 1)
        if len(job_ids) > MAX_OPERATION_JOBS:
            raise invalid("job_id", f"the project has over {MAX_OPERATION_JOBS} jobs: "
                                    "cancel job by job")
    operation_id = "op_" + uuid.uuid4().hex
    location = f"/v1/operations/{operation_id}"
    command_id = new_command_id()
    await ctx.accepted(StartOperation(command_id=command_id, project_id=key.project_id,
                                      job_id=project_stream(key.project_id),
                                      issued_at=datetime.now(UTC),
                                      actor=f"{key.project_id}:{key.role}",
                                      operation_id=operation_id, job_ids=job_ids,
                                      job_version=data.job_version),
                       location=location, resource_id=operation_id)
    deadline = time.monotonic() + ctx.settings.command_wait_secs
    while time.monotonic() < deadline:
        view = await get_operation(ctx.engine, key.project_id, operation_id)
        if view is not None and view.finished_at is not None:
            return Response(operation_response(view), status_code=200)
        await asyncio.sleep(_POLL_SECS)
    raise StillPending(command_id, location, operation_id)


@get("/v1/operations/{operation_id:str}", summary="A tracked operation's progress and result")
async def read_operation(request: Request[Any, Any, Any],
                         operation_id: FromPath[str]) -> OperationResponse:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    view = await get_operation(ctx.engine, key.project_id, operation_id)
    if view is None:
        raise not_found("operation", operation_id)
    return operation_response(view)
