"""POST /v1/jobs/{id_or_slug}/trigger/bulk: up to 1,000 runs of one job in one request.

Items are decoded and checked one by one (a bad item is answered in its place and the
others go on), sent as one TriggerRun each (the producer batches them into few requests),
and answered together with 201 once every accepted run is visible in the read model (or,
item by item, "accepted" past the wait bound or at once with ``Prefer: respond-async``).
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, post
from litestar.params import FromPath

from schemas.api import (
    BulkItemResult,
    BulkTriggerRequest,
    BulkTriggerResponse,
    Error,
    TriggerRunRequest,
)
from services.api.auth import caller_of
from services.api.body import decode_as, decode_body
from services.api.context import ApiContext, StillPending, prefers_async
from services.api.errors import ApiError
from services.api.ids import new_command_id, new_run_id
from services.api.jobs import find_job, payload_problem
from services.domain import TriggerRun


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
            await payload_problem(job.spec.get("payload_schema"), item.payload)
        except ApiError as error:
            results[index] = _rejected(index, error)
            continue
        commands[index] = TriggerRun(
            command_id=new_command_id(), project_id=key.project_id, job_id=job.id,
            issued_at=now, actor=key.role, run_id=new_run_id(), payload=item.payload,
            metadata=item.metadata, priority=item.priority,
            idempotency_key=item.idempotency_key, correlation_id=item.correlation_id,
            batch_id=batch_id, concurrency_key=item.concurrency_key)

    deadline = time.monotonic() + ctx.settings.command_wait_secs
    answers = await asyncio.gather(*(ctx.accepted(c, resource_id=c.run_id)
                                     for c in commands.values()), return_exceptions=True)
    highest = 0
    for (index, command), answer in zip(commands.items(), answers, strict=True):
        if isinstance(answer, ApiError):
            results[index] = _rejected(index, answer)
        elif isinstance(answer, BaseException) and not isinstance(answer, StillPending):
            raise answer
        else:
            results[index] = BulkItemResult(index=index, status="accepted", id=command.run_id)
            if not isinstance(answer, StillPending):
                highest = max(highest, answer.seq)
    visible = (not prefers_async(request) and highest > 0 and await ctx.watcher.wait_for(
        job.id, highest, max(0.0, deadline - time.monotonic())))
    done = [r for r in results if r is not None]
    if visible:
        done = [BulkItemResult(index=r.index, status="created", id=r.id)
                if r.status == "accepted" else r for r in done]
    created = sum(r.status != "rejected" for r in done)
    body = BulkTriggerResponse(batch_id=batch_id, total=len(done), created=created,
                               items=done)
    # 201 for the batch either way: each item says whether its run is visible yet
    # ("created"), only accepted ("accepted": past the wait bound, or asked with
    # Prefer: respond-async), or refused with its error ("rejected").
    headers = {"Preference-Applied": "respond-async"} if prefers_async(request) else {}
    return Response(body, status_code=201, headers=headers)


__all__ = ["trigger_bulk"]
