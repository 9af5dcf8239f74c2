"""Run routes: read, cancel, event history."""

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath

from projections.queries import get_run, list_run_events
from projections.views import RunView
from schemas.api import CancelRunRequest, RunEventResponse, RunMessage, RunResponse
from services.api.attempts import attempts_of, deliveries_of, messages_of
from services.api.auth import caller_of
from services.api.body import decode_body
from services.api.context import ApiContext
from services.api.errors import not_found
from services.api.ids import new_command_id
from services.api.retention import purged
from services.config import ApiKey
from services.domain import CancelRun
from services.domain.versions import version_id_for


async def run_view(ctx: ApiContext, key: ApiKey, run_id: str) -> RunView:
    view = await get_run(ctx.engine, key.project_id, run_id)
    if view is None:
        # Every run route reads its run here: a purged run answers the same on each.
        raise await purged(ctx, key.project_id, run_id) or not_found("run", run_id)
    return view


async def run_response(ctx: ApiContext, key: ApiKey, run_id: str) -> RunResponse:
    return response_of(await run_view(ctx, key, run_id))


# The trigger's overrides as the run object names them.
_OVERRIDE_FIELDS = {"max_attempts": "max_attempts_override",
                    "timeout_secs": "timeout_secs_override", "retry_backoff": "retry_backoff",
                    "retry_initial_delay_secs": "retry_initial_delay_secs",
                    "retry_max_delay_secs": "retry_max_delay_secs"}


def response_of(view: RunView) -> RunResponse:
    """Seed 002's run object from the read model's row."""
    fields = msgspec.structs.asdict(view)
    detail = fields.pop("error")
    overrides = fields.pop("overrides") or {}
    fields.update({_OVERRIDE_FIELDS[k]: v for k, v in overrides.items() if k in _OVERRIDE_FIELDS})
    fields.update(error=None if detail is None else detail.get("message"), error_detail=detail,
                  tags=fields["tags"] or {}, debug_mode=bool(fields["debug_mode"]),
                  job_version_id=version_id_for(view.job_id, view.job_version),
                  code=fields.pop("outcome_code"),
                  counters=_tree_counters(fields["counters"], fields.pop("child_counters")),
                  lineage_depth=fields["lineage_depth"] or 0, type=fields.pop("run_type"))
    return msgspec.convert(fields, RunResponse, from_attributes=False)


def _tree_counters(own: dict[str, int] | None,
                   children: dict[str, int] | None) -> dict[str, int]:
    """A run's counters: its own plus its children's (seed 004's flow totals)."""
    total = dict(own or {})
    for name, value in (children or {}).items():
        total[name] = total.get(name, 0) + value
    return total


@get("/v1/runs/{run_id:str}", summary="Get a run, with its attempts")
async def read_run(request: Request[Any, Any, Any], run_id: FromPath[str]) -> RunResponse:
    ctx: ApiContext = request.app.state.ctx
    key = caller_of(request)
    run = await run_response(ctx, key, run_id)
    if run.attempt or run.finished_at is not None:
        events = await list_run_events(ctx.engine, key.project_id, run_id)
        run.attempts = attempts_of(events)
        run.webhook_deliveries = deliveries_of(events)
    return run


@get("/v1/runs/{run_id:str}/messages", summary="The messages the run's endpoint logged")
async def run_messages(request: Request[Any, Any, Any],
                       run_id: FromPath[str]) -> list[RunMessage]:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    await run_view(ctx, key, run_id)
    events = await list_run_events(ctx.engine, key.project_id, run_id)
    return [msgspec.convert(m, RunMessage) for m in messages_of(events)]


@post("/v1/runs/{run_id:str}/cancel", status_code=200, summary="Cancel a run")
async def cancel_run(request: Request[Any, Any, Any], run_id: FromPath[str]) -> RunResponse:
    key = caller_of(request, "operator")
    data = await decode_body(request, CancelRunRequest, optional=True)
    ctx: ApiContext = request.app.state.ctx
    run = await run_view(ctx, key, run_id)
    await ctx.execute(CancelRun(command_id=new_command_id(), project_id=key.project_id,
                                job_id=run.job_id, issued_at=datetime.now(UTC),
                                actor=key.role, run_id=run_id, reason=data.reason),
                      location=f"/v1/runs/{run_id}")
    return await run_response(ctx, key, run_id)


@get("/v1/runs/{run_id:str}/events", summary="A run's event history")
async def run_events(request: Request[Any, Any, Any],
                     run_id: FromPath[str]) -> list[RunEventResponse]:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    await run_view(ctx, key, run_id)
    events = await list_run_events(ctx.engine, key.project_id, run_id)
    return [msgspec.convert(e, RunEventResponse, from_attributes=True) for e in events]
