"""POST /v1/jobs/{id_or_slug}/trigger/bulk: up to 1,000 runs of one job in one request.

Items are decoded and checked one by one (a bad item is answered in its place and the
others go on), sent together as one TriggerRuns command (or a few, to keep each inside a
Kafka record) which the processor decides item by item, and answered together with 201
once every accepted run is visible in the read model (or, item by item, "accepted" past
the wait bound or at once with ``Prefer: respond-async``).
An item whose idempotency key made a run within the job's dedup window is answered with
that run (``idempotency_hit``) and is not counted in ``created``.
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, post
from litestar.params import FromPath

from projections.queries import run_statuses
from schemas.api import (
    BulkItemResult,
    BulkTriggerRequest,
    BulkTriggerResponse,
    Error,
    TriggerRunRequest,
)
from services.api.auth import caller_of
from services.api.body import decode_as, decode_body
from services.api.context import REJECTION_STATUS, ApiContext, StillPending, prefers_async
from services.api.errors import ApiError
from services.api.ids import new_command_id, new_run_id
from services.api.jobs import find_job
from services.api.quotas import quota_error
from services.api.triggers import trigger_command
from services.domain import TriggerRun, TriggerRuns, encode_command
from services.runtoken import run_token

# One bulk command stays well inside one Kafka record (1 MB by default): items past this
# many encoded bytes go in a further command.
MAX_COMMAND_BYTES = 512 * 1024


def _chunks(commands: dict[int, TriggerRun]) -> list[list[int]]:
    """The items' indexes, in order, cut into commands of at most MAX_COMMAND_BYTES."""
    chunks: list[list[int]] = []
    size = 0
    for index, command in commands.items():
        length = len(encode_command(command))
        if not chunks or size + length > MAX_COMMAND_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(index)
        size += length
    return chunks


def _rejected(index: int, error: ApiError) -> BulkItemResult:
    return BulkItemResult(index=index, status="rejected",
                          error=Error(code=error.code, message=error.message,
                                      details=error.details))


@post("/v1/jobs/{id_or_slug:str}/trigger/bulk", status_code=201,
      summary="Trigger up to 1,000 runs of a job")
async def trigger_bulk(request: Request[Any, Any, Any],
                       id_or_slug: FromPath[str]) -> Response[BulkTriggerResponse]:
    key = caller_of(request, "operator")
    data = await decode_body(request, BulkTriggerRequest)
    ctx: ApiContext = request.app.state.ctx
    job = await find_job(ctx, key, id_or_slug)
    batch_id = "batch_" + uuid.uuid4().hex
    now = datetime.now(UTC)
    results: list[BulkItemResult | None] = [None] * len(data.items)
    commands: dict[int, TriggerRun] = {}
    for index, raw in enumerate(data.items):
        try:
            item = decode_as(raw, TriggerRunRequest)
            commands[index] = await trigger_command(
                key, job, item, command_id=new_command_id(), run_id=new_run_id(), now=now,
                batch_id=batch_id)
        except ApiError as error:
            results[index] = _rejected(index, error)

    admission, refusals = await ctx.quota_guard.admit(
        ctx.engine, key.project_id, [c.run_id for c in commands.values()])
    for index, refused in zip(list(commands), refusals, strict=True):
        if refused is not None:
            results[index] = _rejected(index, quota_error(refused))
            del commands[index]
    ctx.quota_guard.release_later(admission, ctx.settings.command_wait_secs)

    deadline = time.monotonic() + ctx.settings.command_wait_secs
    chunks = _chunks(commands)
    answers = await asyncio.gather(*(ctx.accepted(TriggerRuns(
        command_id=new_command_id(), project_id=key.project_id, job_id=job.id,
        issued_at=now, actor=key.role, items=[commands[i] for i in chunk]))
        for chunk in chunks), return_exceptions=True)
    highest = 0
    hits: dict[int, str] = {}
    for chunk, answer in zip(chunks, answers, strict=True):
        if isinstance(answer, BaseException) and not isinstance(answer, ApiError | StillPending):
            raise answer
        for position, index in enumerate(chunk):
            run_id = commands[index].run_id
            if isinstance(answer, ApiError):
                results[index] = _rejected(index, answer)
            elif isinstance(answer, StillPending):
                results[index] = BulkItemResult(index=index, status="accepted", id=run_id)
            else:
                said = (answer.items or [])[position]
                if said.rejected:
                    code = said.code or "conflict"
                    results[index] = _rejected(index, ApiError(
                        REJECTION_STATUS.get(code, 409), said.reason or "rejected", code=code))
                    continue
                highest = max(highest, answer.seq)
                if said.idempotency_hit:
                    run_id = hits[index] = said.run_id
                results[index] = BulkItemResult(index=index, status="accepted", id=run_id,
                                                idempotency_hit=index in hits)
    visible = (not prefers_async(request) and highest > 0 and await ctx.watcher.wait_for(
        job.id, highest, max(0.0, deadline - time.monotonic())))
    if visible:
        await ctx.quota_guard.release(admission)
    elif highest > 0:
        ctx.quota_guard.release_once_visible(admission, ctx.watcher, job.id, highest,
                                             ctx.settings.command_wait_secs)
    done = [r for r in results if r is not None]
    if visible:
        current = await run_statuses(ctx.engine, key.project_id, list(hits.values()))
        for r in done:
            if r.status != "accepted" or r.id is None:
                continue
            command = commands[r.index]
            if r.idempotency_hit:
                r.status = current.get(r.id, "accepted")
            else:
                late = command.scheduled_at is not None and command.scheduled_at > now
                r.status = "delayed" if late else "queued"
    for r in done:
        if r.id is not None:
            r.run_token = run_token(ctx.token_secret, key.project_id, job.id, r.id, 1)
    created = sum(r.status != "rejected" and not r.idempotency_hit for r in done)
    body = BulkTriggerResponse(batch_id=batch_id, total=len(done), created=created,
                               results=done)
    # 201 for the batch either way: each item says its run's status (visible in the read
    # model), "accepted" (not visible yet: past the wait bound, or asked with
    # Prefer: respond-async), or "rejected" with its error.
    headers = {"Preference-Applied": "respond-async"} if prefers_async(request) else {}
    return Response(body, status_code=201, headers=headers)


__all__ = ["trigger_bulk"]
