"""GET /v1/runs (the key's project's runs, filtered and sorted, a page at a time), and a
run's tree: GET /v1/runs/{id}/children, GET /v1/runs/{id}/lineage.

Pages go by keyset (``next_cursor``: no run repeated or skipped while runs arrive) or by
``offset`` (seed 003's paging: simple, but a page may shift while runs arrive)."""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get
from litestar.params import FromPath, FromQuery, Parameter

from projections.queries import find_job
from projections.run_list import (
    Position,
    RunFilters,
    RunOrder,
    SortKey,
    ancestors_of,
    children_of,
    list_runs,
    position_of,
)
from projections.views import RunView
from schemas.api import RunLineage, RunPage
from services.api.auth import caller_of
from services.api.context import ApiContext
from services.api.errors import invalid
from services.api.runs import response_of, run_view
from services.domain import RunStatus

MAX_LABEL_FILTERS = 10
MAX_OFFSET = 100_000
STATUSES = frozenset(s.value for s in RunStatus)
Text = Annotated[str | None, Parameter(min_length=1, max_length=200)]
# A time bound: RFC 3339, read by msgspec (Litestar would also take a Unix timestamp, which
# the documented format is not).
Moment = Annotated[str | None, Parameter(
    description="RFC 3339 date-time; exclusive", max_length=64,
    schema_extra={"format": "date-time"})]
Labels = Annotated[list[str] | None, Parameter(
    description="key:value; repeat to require several (AND)", max_items=MAX_LABEL_FILTERS)]


def _pairs(name: str, texts: list[str] | None) -> tuple[tuple[str, str], ...]:
    pairs = []
    for text in texts or []:
        key, sep, value = text.partition(":")
        if not sep or not key:
            raise invalid(name, f"{text[:64]!r} is not key:value")
        pairs.append((key, value))
    return tuple(pairs)


def _statuses(texts: list[str] | None) -> tuple[str, ...]:
    found = tuple(s for text in texts or [] for s in text.split(",") if s)
    if unknown := [s for s in found if s not in STATUSES]:
        raise invalid("status", f"{unknown[0][:32]!r} is not a run status "
                                f"({', '.join(sorted(STATUSES))})")
    return found


def _utc(name: str, text: str | None) -> datetime | None:
    """The bound as a UTC instant (stored times are UTC; another offset means the same
    instant, no offset means UTC)."""
    if text is None:
        return None
    try:
        value = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        raise invalid(name, "not an RFC 3339 date-time, such as 2026-12-01T00:00:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def cursor_of(position: Position, order: RunOrder) -> str:
    value, run_id = position
    shown = value.isoformat() if isinstance(value, datetime) else value
    raw = msgspec.json.encode([order.key, order.descending, shown, run_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def position_from(cursor: str, order: RunOrder) -> Position:
    """The position a cursor of this list's order names; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, descending, value, run_id = msgspec.json.decode(raw, type=tuple[str, bool, Any, str])
        if (key, descending) != (order.key, order.descending):
            raise invalid("cursor", "the cursor is of another sort or order: ask again "
                                    "with the sort and order it was handed out with")
        # An int the priority column holds on every store (PostgreSQL's is 32 bits).
        if key == "priority" and isinstance(value, int) and -(2**31) <= value < 2**31:
            return value, run_id
        if isinstance(value, str):
            return datetime.fromisoformat(value), run_id
    except (binascii.Error, msgspec.DecodeError, ValueError, UnicodeDecodeError):
        pass
    raise invalid("cursor", "not a cursor this list handed out")


def _page(views: list[RunView], limit: int, order: RunOrder) -> RunPage:
    more = len(views) > limit
    views = views[:limit]
    cursor = cursor_of(position_of(views[-1], order), order) if more else None
    return RunPage(data=[response_of(v) for v in views], has_more=more, next_cursor=cursor)


@get("/v1/runs", summary="List runs")
async def list_runs_route(
    request: Request[Any, Any, Any],
    job: Annotated[str | None, Parameter(
        description="the job's id or slug", min_length=1, max_length=64)] = None,
    status: Annotated[list[str] | None, Parameter(
        description="one or several (repeat, or separate with commas)", max_items=10)] = None,
    tag: Labels = None,
    metadata: Labels = None,
    concurrency_key: Text = None,
    batch_id: Text = None,
    triggered_by: Text = None,
    parent_run_id: Text = None,
    correlation_id: Text = None,
    idempotency_key: Text = None,
    created_after: Moment = None,
    created_before: Moment = None,
    started_after: Moment = None,
    started_before: Moment = None,
    finished_after: Moment = None,
    finished_before: Moment = None,
    sort: FromQuery[SortKey] = "created_at",
    order: FromQuery[Literal["asc", "desc"]] = "desc",
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=400)] = None,
    offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
) -> RunPage:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    if cursor is not None and offset:
        raise invalid("offset", "page by cursor or by offset, not both")
    equal = {name: value for name, value in (
        ("concurrency_key", concurrency_key), ("batch_id", batch_id),
        ("triggered_by", triggered_by), ("parent_run_id", parent_run_id),
        ("correlation_id", correlation_id), ("idempotency_key", idempotency_key))
        if value is not None}
    if job is not None:
        # A slug names the live job that has it; an id also finds a deleted job's runs.
        found = await find_job(ctx.engine, key.project_id, job)
        equal["job_id"] = job if found is None else found.id
    bounds = {"created": (created_after, created_before),
              "started": (started_after, started_before),
              "finished": (finished_after, finished_before)}
    filters = RunFilters(
        equal=equal, statuses=_statuses(status), tags=_pairs("tag", tag),
        metadata=_pairs("metadata", metadata),
        after={f"{c}_at": t for c, (a, _) in bounds.items()
               if (t := _utc(f"{c}_after", a)) is not None},
        before={f"{c}_at": t for c, (_, b) in bounds.items()
                if (t := _utc(f"{c}_before", b)) is not None})
    run_order = RunOrder(sort, order == "desc")
    after = None if cursor is None else position_from(cursor, run_order)
    views = await list_runs(ctx.engine, key.project_id, filters, run_order, limit + 1,
                            after=after, offset=offset)
    return _page(views, limit, run_order)


@get("/v1/runs/{run_id:str}/children", summary="A run's children, oldest first")
async def run_children(
    request: Request[Any, Any, Any],
    run_id: FromPath[str],
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=400)] = None,
) -> RunPage:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    await run_view(ctx, key, run_id)  # 404 for a run the project does not have
    run_order = RunOrder("created_at", descending=False)
    after = None if cursor is None else position_from(cursor, run_order)
    views = await children_of(ctx.engine, key.project_id, run_id, limit + 1, after)
    return _page(views, limit, run_order)


@get("/v1/runs/{run_id:str}/lineage", summary="A run's ancestors, its parent first")
async def run_lineage(request: Request[Any, Any, Any], run_id: FromPath[str]) -> RunLineage:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    run = await run_view(ctx, key, run_id)
    # A lineage is at most MAX_LINEAGE_DEPTH (100) deep; one more read shows a cut.
    ancestors = await ancestors_of(ctx.engine, key.project_id, run, limit=101)
    return RunLineage(run_id=run.id, depth=run.lineage_depth or 0,
                      ancestors=[response_of(v) for v in ancestors])


__all__ = ["list_runs_route", "run_children", "run_lineage"]
