"""The callbacks an endpoint makes about the attempt it works on, authenticated by the
run token it received in ``X-Run-Token`` (bound to that run and attempt).

Each becomes a command on the run's job; the processor decides it against the run's state,
so a callback about an attempt that already ended (late, or a token of an earlier attempt)
is rejected with 409 and changes nothing. The answer says whether the run was asked to
stop. They answer once the processor has decided, without waiting for the read model:
an endpoint calling back needs the decision, not the run's page.
"""

from datetime import UTC, datetime
from typing import Any

from litestar import Request, post
from litestar.params import FromPath

from events.types import AttemptFailure
from projections.queries import find_job as find_job_view
from projections.queries import get_run
from schemas.callbacks import (
    CallbackAnswer,
    ChildAnswer,
    ChildRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatRequest,
    MessageRequest,
    ProgressRequest,
)
from services.api.auth import run_caller
from services.api.body import decode_body
from services.api.context import ApiContext
from services.api.errors import invalid
from services.api.ids import new_command_id, new_run_id
from services.api.jobs import NO_SUCH_JOB
from services.api.triggers import check_payload
from services.domain.commands import (
    Command,
    LogRunMessage,
    RecordHeartbeat,
    ReportAttemptFailed,
    ReportAttemptSucceeded,
    ReportProgress,
    SpawnChild,
)
from services.runtoken import RunClaims

_COUNTERS = {"num_success": "numSuccess", "num_error": "numError",
             "num_ignore": "numIgnore", "num_export": "numExport",
             "num_pages_generated": "numPagesGenerated",
             "num_pages_processed": "numPagesProcessed"}


def _common(claims: RunClaims) -> dict[str, Any]:
    return {"command_id": new_command_id(), "project_id": claims.project_id,
            "job_id": claims.job_id, "issued_at": datetime.now(UTC), "actor": "endpoint",
            "run_id": claims.run_id, "attempt": claims.attempt}


async def _send(request: Request[Any, Any, Any], claims: RunClaims,
                command: Command) -> CallbackAnswer:
    ctx: ApiContext = request.app.state.ctx
    outcome = await ctx.accepted(command, location=f"/v1/runs/{claims.run_id}")
    return CallbackAnswer(run_id=claims.run_id, attempt=claims.attempt,
                          cancel_requested=outcome.code == "cancel_requested")


@post("/v1/runs/{run_id:str}/heartbeat", status_code=200, summary="The attempt is alive")
async def heartbeat(request: Request[Any, Any, Any], run_id: FromPath[str]) -> CallbackAnswer:
    claims = run_caller(request, run_id)
    await decode_body(request, HeartbeatRequest, optional=True)
    return await _send(request, claims, RecordHeartbeat(**_common(claims)))


@post("/v1/runs/{run_id:str}/progress", status_code=200,
      summary="The attempt's record counters so far")
async def progress(request: Request[Any, Any, Any], run_id: FromPath[str]) -> CallbackAnswer:
    claims = run_caller(request, run_id)
    data = await decode_body(request, ProgressRequest)
    counters = {name: value for field, name in _COUNTERS.items()
                if (value := getattr(data, field)) is not None}
    return await _send(request, claims, ReportProgress(**_common(claims), counters=counters))


@post("/v1/runs/{run_id:str}/messages", status_code=200,
      summary="Log a message on the run (seed 003's status, text, toolId)")
async def log_message(request: Request[Any, Any, Any],
                      run_id: FromPath[str]) -> CallbackAnswer:
    claims = run_caller(request, run_id)
    data = await decode_body(request, MessageRequest)
    return await _send(request, claims, LogRunMessage(**_common(claims), status=data.status,
                                                      text=data.text, tool_id=data.toolId))


@post("/v1/runs/{run_id:str}/complete", status_code=200,
      summary="The attempt succeeded, with its result")
async def complete(request: Request[Any, Any, Any], run_id: FromPath[str]) -> CallbackAnswer:
    claims = run_caller(request, run_id)
    data = await decode_body(request, CompleteRequest, optional=True)
    return await _send(request, claims,
                       ReportAttemptSucceeded(**_common(claims), result=data.result))


@post("/v1/runs/{run_id:str}/fail", status_code=200,
      summary="The attempt failed (retried while attempts are left, unless not retryable)")
async def fail(request: Request[Any, Any, Any], run_id: FromPath[str]) -> CallbackAnswer:
    claims = run_caller(request, run_id)
    data = await decode_body(request, FailRequest)
    failure = AttemptFailure(kind="endpoint_reported", message=data.error,
                             retryable=data.retryable)
    return await _send(request, claims, ReportAttemptFailed(**_common(claims), failure=failure))


@post("/v1/runs/{run_id:str}/children", status_code=201,
      summary="Spawn a child run of another job (parent_run_id, lineage_depth, type)")
async def spawn_child(request: Request[Any, Any, Any], run_id: FromPath[str]) -> ChildAnswer:
    claims = run_caller(request, run_id)
    data = await decode_body(request, ChildRequest)
    ctx: ApiContext = request.app.state.ctx
    job = await find_job_view(ctx.engine, claims.project_id, data.job_id)
    if job is None:
        raise invalid("job_id", NO_SUCH_JOB)
    await check_payload(job, data.payload)
    parent = await get_run(ctx.engine, claims.project_id, claims.run_id)
    child_id = new_run_id()
    await ctx.accepted(SpawnChild(**_common(claims), child_job_id=job.id, child_run_id=child_id,
                                  run_type=data.type, payload=data.payload),
                       location=f"/v1/runs/{child_id}")
    depth = (parent.lineage_depth or 0) + 1 if parent is not None else 1
    return ChildAnswer(id=child_id, job_id=job.id, parent_run_id=claims.run_id,
                       lineage_depth=depth, type=data.type, status="accepted",
                       location=f"/v1/runs/{child_id}")


CALLBACK_ROUTES = [heartbeat, progress, log_message, complete, fail, spawn_child]
