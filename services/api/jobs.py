"""Job routes: create, read, trigger."""

from datetime import UTC, datetime
from typing import Any

import jsonschema
import msgspec
from litestar import Request, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody

from events.types import JobSpec
from projections.queries import get_job, get_job_by_slug
from projections.views import JobView
from schemas.api import CreateJobRequest, JobResponse, RunResponse, TriggerRunRequest
from services.api.auth import caller_of, require
from services.api.context import ApiContext
from services.api.ids import job_id_for, new_command_id, new_run_id
from services.api.runs import run_response
from services.config import ApiKey
from services.domain import CreateJob, TriggerRun


def job_response(view: JobView) -> JobResponse:
    fields = {**view.spec, "id": view.id, "project_id": view.project_id,
              "version": view.version, "enabled": view.enabled,
              "created_at": view.created_at, "updated_at": view.updated_at}
    return msgspec.convert(fields, JobResponse, from_attributes=False)


def _check_schema(schema: dict[str, Any] | None) -> None:
    if schema is None:
        return
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValidationException(f"payload_schema is not a valid JSON Schema at {path}: "
                                  f"{exc.message}") from exc


@post("/v1/jobs", status_code=201, summary="Create a job")
async def create_job(request: Request, data: JSONBody[CreateJobRequest]) -> JobResponse:
    key = caller_of(request)
    require(key, "operator")
    _check_schema(data.payload_schema)
    ctx: ApiContext = request.app.state.ctx
    fields = msgspec.structs.asdict(data)
    del fields["project_id"]
    spec = JobSpec(**fields, created_by=key.project_id + ":" + key.role)
    job_id = job_id_for(key.project_id, data.slug)
    await ctx.execute(CreateJob(command_id=new_command_id(), project_id=key.project_id,
                                job_id=job_id, issued_at=datetime.now(UTC), spec=spec),
                      location=f"/v1/jobs/{job_id}")
    return job_response(await _job(ctx, key, job_id))


@get("/v1/jobs/{job_id:str}", summary="Get a job")
async def read_job(request: Request, job_id: FromPath[str]) -> JobResponse:
    key = caller_of(request)
    return job_response(await _job(request.app.state.ctx, key, job_id))


async def _job(ctx: ApiContext, key: ApiKey, id_or_slug: str) -> JobView:
    view = await get_job(ctx.engine, key.project_id, id_or_slug)
    if view is None:
        view = await get_job_by_slug(ctx.engine, key.project_id, id_or_slug)
    if view is None:
        raise NotFoundException(f"job {id_or_slug!r} not found")
    return view


@post("/v1/jobs/{id_or_slug:str}/trigger", status_code=201, summary="Trigger a job run")
async def trigger_job(request: Request, id_or_slug: FromPath[str],
                      data: JSONBody[TriggerRunRequest | None] = None) -> RunResponse:
    key = caller_of(request)
    require(key, "operator")
    data = data or TriggerRunRequest()
    ctx: ApiContext = request.app.state.ctx
    job = await _job(ctx, key, id_or_slug)
    schema = job.spec.get("payload_schema")
    if schema is not None:
        _check_payload(schema, data.payload)
    run_id = new_run_id()
    await ctx.execute(
        TriggerRun(command_id=new_command_id(), project_id=key.project_id, job_id=job.id,
                   issued_at=datetime.now(UTC), actor=key.role, run_id=run_id,
                   payload=data.payload, metadata=data.metadata, priority=data.priority,
                   idempotency_key=data.idempotency_key, correlation_id=data.correlation_id),
        location=f"/v1/runs/{run_id}")
    return await run_response(ctx, key, run_id)


def _check_payload(schema: dict[str, Any], payload: Any) -> None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(payload))
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path)
        where = f"payload/{path}" if path else "payload"
        raise ValidationException(f"{where} does not match the job's payload_schema: "
                                  f"{error.message}")


__all__ = ["create_job", "read_job", "trigger_job"]
