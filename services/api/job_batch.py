"""POST /v1/jobs/batch (up to 100 creates, each answered in its place) and
POST /v1/jobs/{id_or_slug}/clone (the same settings under a new slug, version 1).

Each job is its own aggregate on its own partition, so a batch is not atomic: one bad
item (invalid, a slug that exists, a slug twice in the batch) is refused alone.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

from litestar import Request, post
from litestar.params import FromPath

from projections.views import JobView
from schemas.api import (
    BatchCreateItem,
    CloneJobRequest,
    CreateJobRequest,
    Error,
    JobResponse,
)
from services.api.auth import caller_of
from services.api.body import decode_as, decode_body, decode_json
from services.api.context import ApiContext
from services.api.errors import ApiError, invalid
from services.api.ids import job_id_for, new_command_id
from services.api.job_rules import check_job
from services.api.jobs import find_job, job_response, shown_once, spec_of
from services.api.webhook_fields import kept_secret, secret_fields
from services.config import ApiKey
from services.domain import CreateJob

MAX_BATCH = 100
CREATES_AT_ONCE = 20


async def _create(ctx: ApiContext, key: ApiKey, data: CreateJobRequest,
                  source: JobView | None = None) -> JobResponse:
    await check_job(data, ctx.settings)
    job_id = job_id_for(key.project_id, data.slug)
    # A clone keeps the source's secret (sealed anew: a seal is bound to its job).
    kept = None if source is None else kept_secret(ctx.token_secret, source.spec, source.id,
                                                    job_id)
    secret = secret_fields(ctx.token_secret, job_id, given=data.webhook_secret,
                           webhook_url=data.webhook_url, kept=kept)
    spec = spec_of(data, key.project_id + ":" + key.role, secret)
    await ctx.execute(CreateJob(command_id=new_command_id(), project_id=key.project_id,
                                job_id=job_id, issued_at=datetime.now(UTC), spec=spec),
                      location=f"/v1/jobs/{job_id}", resource_id=job_id)
    return shown_once(job_response(await find_job(ctx, key, job_id, fresh=True)), secret)


def _refused(index: int, exc: ApiError) -> BatchCreateItem:
    return BatchCreateItem(index=index, status="rejected",
                           error=Error(code=exc.code, message=exc.message,
                                       details=exc.details))


@post("/v1/jobs/batch", status_code=200, summary="Create up to 100 jobs")
async def create_jobs(request: Request[Any, Any, Any]) -> list[BatchCreateItem]:
    key = caller_of(request, "operator")
    body = decode_json(await request.body())
    if not isinstance(body, list) or not 1 <= len(body) <= MAX_BATCH:
        raise invalid("body", f"an array of 1 to {MAX_BATCH} job definitions")
    ctx: ApiContext = request.app.state.ctx
    slugs = [item.get("slug") if isinstance(item, dict) else None for item in body]
    room = asyncio.Semaphore(CREATES_AT_ONCE)

    async def one(index: int, item: Any) -> BatchCreateItem:
        try:
            if slugs[index] is not None and slugs.index(slugs[index]) != index:
                raise invalid("slug", f"the slug is used by item {slugs.index(slugs[index])} "
                                      "of this batch", status=409)
            data = decode_as(item, CreateJobRequest)
            async with room:
                job = await _create(ctx, key, data)
            return BatchCreateItem(index=index, status="created", job=job)
        except ApiError as exc:
            return _refused(index, exc)

    return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(body))))


@post("/v1/jobs/{id_or_slug:str}/clone", status_code=201, summary="Clone a job")
async def clone_job(request: Request[Any, Any, Any], id_or_slug: FromPath[str]) -> JobResponse:
    key = caller_of(request, "operator")
    data = await decode_body(request, CloneJobRequest)
    ctx: ApiContext = request.app.state.ctx
    source = await find_job(ctx, key, id_or_slug, fresh=True)
    fields = set(CreateJobRequest.__struct_fields__) - {"webhook_secret", "project_id"}
    copied = {k: v for k, v in source.spec.items() if k in fields}
    copied.update(slug=data.slug, name=data.name or source.spec["name"],
                  enabled=source.enabled)
    return await _create(ctx, key, decode_as(copied, CreateJobRequest), source)


__all__ = ["clone_job", "create_jobs"]
