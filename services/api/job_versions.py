"""PATCH /v1/jobs/{id_or_slug} (a new version each time) and the versions' reads."""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get, patch
from litestar.params import FromPath, Parameter

from projections.queries import get_job_version, list_job_versions
from projections.views import JobVersionView
from schemas.api import (
    CreateJobRequest,
    JobResponse,
    JobVersionPage,
    JobVersionResponse,
    PatchJobRequest,
)
from services.api.auth import caller_of
from services.api.body import decode_as, decode_body
from services.api.context import ApiContext
from services.api.errors import invalid, not_found
from services.api.ids import new_command_id
from services.api.job_rules import check_job
from services.api.jobs import SECRET_MASK, find_job, job_response, shown_once, spec_of
from services.api.webhook_fields import kept_secret, secret_fields
from services.domain import UpdateJob

# What a stored spec holds that a create body does not take.
_NOT_IN_BODY = {"enabled", "created_by", "webhook_secret_sha256", "webhook_secret_sealed"}


@patch("/v1/jobs/{job_id:str}", summary="Update a job (makes a new version)")
async def update_job(request: Request[Any, Any, Any], job_id: FromPath[str]) -> JobResponse:
    key = caller_of(request, "operator")
    data = await decode_body(request, PatchJobRequest)
    ctx: ApiContext = request.app.state.ctx
    job = await find_job(ctx, key, job_id, fresh=True)
    given = {name: value for name, value in msgspec.structs.asdict(data).items()
             if value is not msgspec.UNSET}
    if given.get("slug", job.slug) != job.slug:
        raise invalid("slug", "a job's slug cannot change (its id follows from it); "
                              "clone the job under the new slug instead")
    given.pop("slug", None)
    # The whole definition after the patch, checked exactly as a create is.
    fields = set(CreateJobRequest.__struct_fields__)
    current = {k: v for k, v in job.spec.items() if k in fields and k not in _NOT_IN_BODY}
    merged = decode_as({**current, **msgspec.to_builtins(given)}, CreateJobRequest)
    await check_job(merged, ctx.settings)
    kept = kept_secret(ctx.token_secret, job.spec, job.id, job.id)
    secret = secret_fields(ctx.token_secret, job.id, given=merged.webhook_secret,
                           webhook_url=merged.webhook_url, kept=kept)
    spec = spec_of(merged, job.spec.get("created_by") or "", secret)
    changes = {name: msgspec.to_builtins(getattr(spec, name))
               for name in given if name != "webhook_secret"}
    before = (None, None) if kept is None else (kept.sealed, kept.sha256)
    if (secret.sealed, secret.sha256) != before:
        changes["webhook_secret_sha256"] = spec.webhook_secret_sha256
        changes["webhook_secret_sealed"] = spec.webhook_secret_sealed
    await ctx.execute(UpdateJob(command_id=new_command_id(), project_id=key.project_id,
                                job_id=job.id, issued_at=datetime.now(UTC),
                                actor=key.project_id + ":" + key.role, changes=changes),
                      location=f"/v1/jobs/{job.id}", resource_id=job.id)
    return shown_once(job_response(await find_job(ctx, key, job.id, fresh=True)), secret)


def version_response(view: JobVersionView) -> JobVersionResponse:
    fields = {**view.spec, "id": view.version_id, "job_id": view.job_id,
              "version": view.version, "created_at": view.created_at,
              "created_by": view.created_by, "changed_fields": view.changed_fields,
              "backwards_compatible": view.backwards_compatible,
              "webhook_secret": SECRET_MASK if view.spec.get("webhook_secret_sha256")
              else None}
    return msgspec.convert(fields, JobVersionResponse, from_attributes=False)


def _cursor_of(version: int) -> str:
    return base64.urlsafe_b64encode(f"v:{version}".encode()).decode().rstrip("=")


def _version_of(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, number = text.partition(":")
        if kind == "v" and number.isdigit() and len(number) < 10:
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise invalid("cursor", "not a cursor this list handed out")


@get("/v1/jobs/{id_or_slug:str}/versions", summary="List a job's versions, newest first")
async def list_versions(
    request: Request[Any, Any, Any], id_or_slug: FromPath[str],
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=64)] = None,
) -> JobVersionPage:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    job = await find_job(ctx, key, id_or_slug, fresh=True)
    below = None if cursor is None else _version_of(cursor)
    views = await list_job_versions(ctx.engine, key.project_id, job.id, below, limit + 1)
    more = len(views) > limit
    data = [version_response(v) for v in views[:limit]]
    return JobVersionPage(data=data, has_more=more,
                          next_cursor=_cursor_of(data[-1].version) if more else None)


@get("/v1/jobs/{id_or_slug:str}/versions/{version_id:str}", summary="Get one job version")
async def read_version(request: Request[Any, Any, Any], id_or_slug: FromPath[str],
                       version_id: FromPath[str]) -> JobVersionResponse:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    job = await find_job(ctx, key, id_or_slug, fresh=True)
    view = await get_job_version(ctx.engine, key.project_id, job.id, version_id)
    if view is None:
        raise not_found("version", version_id)
    return version_response(view)


__all__ = ["list_versions", "read_version", "update_job"]
