"""The dead-letter list (GET /v1/runs/dlq) and its replay (POST /v1/runs/{id}/replay): a
new run of the same job with the dead run's payload, its ``continuation_of`` and one more
step of lineage."""

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, Parameter

from projections.dead_letters import dead_letter_of, list_dead_letters
from schemas.api import DeadLetter, DeadLetterPage, RunResponse
from services.api.auth import caller_of
from services.api.context import ApiContext
from services.api.cursors import cursor_of, position_of
from services.api.errors import ApiError
from services.api.ids import new_command_id, new_run_id
from services.api.jobs import submit_trigger
from services.api.runs import response_of, run_view
from services.domain import TriggerRun

# A replay of a replay of ...: past this the lineage is a loop nobody is watching.
MAX_LINEAGE_DEPTH = 100


@get("/v1/runs/dlq", summary="The dead-letter list: runs with no attempt left")
async def list_dlq(
    request: Request[Any, Any, Any],
    job_id: Annotated[str | None, Parameter(max_length=64)] = None,
    include_replayed: FromQuery[bool] = False,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=400)] = None,
) -> DeadLetterPage:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    after = None if cursor is None else position_of(cursor)
    found = await list_dead_letters(ctx.engine, key.project_id, job_id=job_id,
                                    include_replayed=include_replayed, after=after,
                                    limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    last = found[-1] if more else None
    return DeadLetterPage(
        data=[DeadLetter(run=response_of(d.run), finished_at=d.finished_at,
                         replayed_by=d.replayed_by) for d in found],
        has_more=more,
        next_cursor=None if last is None else cursor_of(last.finished_at, last.run.id))


@post("/v1/runs/{run_id:str}/replay", status_code=201,
      summary="Replay a dead-lettered run as a new run (continuation_of)")
async def replay_run(request: Request[Any, Any, Any],
                     run_id: FromPath[str]) -> Response[RunResponse]:
    key = caller_of(request, "operator")
    ctx: ApiContext = request.app.state.ctx
    dead = await run_view(ctx, key, run_id)
    listed, replayed_by = await dead_letter_of(ctx.engine, key.project_id, run_id)
    if not listed:
        raise ApiError(409, f"run {run_id} is {dead.status}: only a run with no attempt "
                            "left (failed, timed_out, crashed) can be replayed",
                       code="conflict")
    if replayed_by is not None:
        raise ApiError(409, f"run {run_id} was replayed already, by run {replayed_by}",
                       code="conflict")
    depth = (dead.lineage_depth or 0) + 1
    if depth > MAX_LINEAGE_DEPTH:
        raise ApiError(409, f"run {run_id} is {depth - 1} steps down its lineage; at most "
                            f"{MAX_LINEAGE_DEPTH}", code="conflict")
    command = TriggerRun(
        command_id=new_command_id(), project_id=key.project_id, job_id=dead.job_id,
        issued_at=datetime.now(UTC), actor=key.role, run_id=new_run_id(),
        payload=dead.payload, metadata=dead.metadata, priority=dead.priority,
        # Two replays at once make one run: the second gets the first's (200).
        idempotency_key=f"replay:{run_id}", triggered_by="replay",
        correlation_id=dead.correlation_id, concurrency_key=dead.concurrency_key,
        tags=dead.tags or {}, debug_mode=bool(dead.debug_mode),
        created_by=f"{key.project_id}:{key.role}", continuation_of=run_id,
        parent_run_id=dead.parent_run_id, lineage_depth=depth)
    return await submit_trigger(request, ctx, key, command)
