"""Job routes: create, read, trigger."""

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from events.types import JobSpec, RateLimitKey
from projections.queries import find_job as find_job_view
from projections.views import JobView
from schemas.api import CreateJobRequest, JobResponse, RunResponse, TriggerRunRequest
from services.api.auth import caller_of
from services.api.body import decode_body
from services.api.context import ApiContext, StillPending, prefers_async
from services.api.errors import ApiError, not_found
from services.api.ids import job_id_for, new_command_id, new_run_id
from services.api.job_rules import check_job
from services.api.quotas import quota_error
from services.api.runs import run_response
from services.api.triggers import trigger_command
from services.api.webhook_fields import SecretFields, secret_fields, with_secret
from services.config import ApiKey
from services.domain import CreateJob, TriggerRun
from services.domain.versions import version_id_for
from services.runtoken import run_token

SECRET_MASK = "********"
# A body that names a job the project does not have (a reference that does not hold,
# not a missing resource: 422 on the field).
NO_SUCH_JOB = "no job of this project has this id or slug"


def job_response(view: JobView) -> JobResponse:
    fields = {**view.spec, "id": view.id, "project_id": view.project_id,
              "version": view.version, "enabled": view.enabled,
              "created_at": view.created_at, "updated_at": view.updated_at,
              "version_id": view.version_id or version_id_for(view.id, view.version),
              "updated_by": view.updated_by or view.spec.get("created_by"),
              "webhook_secret": SECRET_MASK if view.spec.get("webhook_secret_sha256")
              else None,
              "next_tick_at": view.next_tick_at,
              "webhook_disabled": view.webhook_disabled_at is not None}
    return msgspec.convert(fields, JobResponse, from_attributes=False)


def spec_of(data: CreateJobRequest, created_by: str, secret: SecretFields) -> JobSpec:
    """The definition to record: the request less what is not part of it (the project
    comes from the key), the webhook secret sealed and fingerprinted only."""
    fields = msgspec.structs.asdict(data)
    del fields["project_id"]
    del fields["webhook_secret"]
    fields["rate_limit_keys"] = [RateLimitKey(**msgspec.structs.asdict(k))
                                 for k in data.rate_limit_keys]
    return with_secret(JobSpec(**fields, created_by=created_by), secret)


@post("/v1/jobs", status_code=201, summary="Create a job")
async def create_job(request: Request[Any, Any, Any]) -> JobResponse:
    key = caller_of(request, "operator")
    data = await decode_body(request, CreateJobRequest)
    ctx: ApiContext = request.app.state.ctx
    await check_job(data, ctx.settings)
    job_id = job_id_for(key.project_id, data.slug)
    secret = secret_fields(ctx.token_secret, job_id, given=data.webhook_secret,
                           webhook_url=data.webhook_url)
    spec = spec_of(data, key.project_id + ":" + key.role, secret)
    await ctx.execute(CreateJob(command_id=new_command_id(), project_id=key.project_id,
                                job_id=job_id, issued_at=datetime.now(UTC), spec=spec),
                      location=f"/v1/jobs/{job_id}", resource_id=job_id,
                      respond_async=prefers_async(request))
    return shown_once(job_response(await find_job(ctx, key, job_id, fresh=True)), secret)


def shown_once(job: JobResponse, secret: SecretFields) -> JobResponse:
    """The answer that made a webhook secret shows it, this once; every read masks it."""
    if secret.shown is not None:
        job.webhook_secret = secret.shown
    return job


@get("/v1/jobs/{job_id:str}", summary="Get a job by id or slug")
async def read_job(request: Request[Any, Any, Any], job_id: FromPath[str]) -> JobResponse:
    return job_response(await find_job(request.app.state.ctx, caller_of(request), job_id,
                                       fresh=True))


async def find_job(ctx: ApiContext, key: ApiKey, id_or_slug: str,
                   fresh: bool = False) -> JobView:
    """The key's job by id or slug; from a cache up to a few seconds old unless ``fresh``
    (see services.api.cache for why that is safe for triggers)."""
    cache_key = (key.project_id, id_or_slug)
    view = None if fresh else ctx.jobs.get(cache_key)
    if view is None:
        view = await find_job_view(ctx.engine, key.project_id, id_or_slug)
        if view is None:
            raise not_found("job", id_or_slug)
        ctx.jobs.put(cache_key, view)
    return view


@post("/v1/jobs/{id_or_slug:str}/trigger", status_code=201, summary="Trigger a job run")
async def trigger_job(request: Request[Any, Any, Any],
                      id_or_slug: FromPath[str]) -> Response[RunResponse]:
    key = caller_of(request, "operator")
    data = await decode_body(request, TriggerRunRequest, optional=True)
    ctx: ApiContext = request.app.state.ctx
    job = await find_job(ctx, key, id_or_slug)
    run_id = new_run_id()
    command = await trigger_command(key, job, data, command_id=new_command_id(), run_id=run_id,
                                    now=datetime.now(UTC))
    return await submit_trigger(request, ctx, key, command)


async def submit_trigger(request: Request[Any, Any, Any], ctx: ApiContext, key: ApiKey,
                         command: TriggerRun) -> Response[RunResponse]:
    """Admit a trigger under the project's quotas, send it, and answer its run (201), the
    idempotency key's earlier run (200), or 202 past the wait bound."""
    run_id = command.run_id
    guard = ctx.quota_guard
    admission, (refused,) = await guard.admit(ctx.engine, key.project_id, [run_id])
    if refused is not None:
        raise quota_error(refused)
    guard.release_later(admission, ctx.settings.command_wait_secs)
    try:
        outcome = await ctx.execute(command, location=f"/v1/runs/{run_id}",
                                    resource_id=run_id, respond_async=prefers_async(request))
    except ApiError:
        await guard.release(admission)  # refused: nothing to count
        raise
    except StillPending as pending:
        # Accepted, not visible yet: count it until the read model does.
        if pending.visible_at is not None:
            guard.release_once_visible(admission, ctx.watcher, *pending.visible_at,
                                       ctx.settings.command_wait_secs)
        raise
    await guard.release(admission)  # visible: the read model counts it now
    hit = outcome.idempotency_hit and outcome.run_id is not None
    run = await run_response(ctx, key, outcome.run_id if hit and outcome.run_id else run_id)
    run.run_token = run_token(ctx.token_secret, key.project_id, run.job_id, run.id, 1)
    run.idempotency_hit = hit
    # 200: the idempotency key's run from before, nothing new; 201: a new run.
    return Response(run, status_code=200 if hit else 201)


__all__ = ["create_job", "find_job", "read_job", "trigger_job"]
