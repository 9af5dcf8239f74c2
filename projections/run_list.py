"""The run list: a project's runs filtered, sorted, and paged by keyset or by offset.

Every filter and every sort has an index that ends in the keyset's columns (the sort's
column, then the run id): see the runs table. A keyset page continues strictly after the
last row of the page before it, so runs that arrive while a client pages are never
repeated, and none that existed is skipped.

Which index leads a read is chosen per request (projections.run_list_plan): a label's
key (tags and metadata are rows of run_labels, keyed in created order), the sort's own
index, or a filter's. Several statuses in created order are read status by status and
merged (one index range each). The filters that do not lead are checked row by row.

Sorting by ``started_at`` or ``finished_at`` lists only the runs that have that time (a
run that never started has no place in that order); filter by status to see the others.
"""

import operator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import ColumnElement, Row, Select, and_, exists, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.rows import fields_of
from projections.run_list_plan import Label, ReadPlan, label_matches, not_indexed, plan_read
from projections.tables import run_labels, runs
from projections.views import RunView

SortKey = Literal["created_at", "started_at", "finished_at", "priority"]
SORT_KEYS: tuple[SortKey, ...] = ("created_at", "started_at", "finished_at", "priority")
# Columns a filter compares for equality (the API's query parameter of the same name).
EQUAL_FILTERS = ("job_id", "concurrency_key", "batch_id", "triggered_by", "parent_run_id",
                 "correlation_id", "idempotency_key")
TIME_FILTERS = ("created_at", "started_at", "finished_at")


@dataclass(frozen=True, slots=True)
class RunFilters:
    equal: dict[str, str] = field(default_factory=dict)  # column -> value (EQUAL_FILTERS)
    statuses: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()  # key, value: all must match
    metadata: tuple[tuple[str, str], ...] = ()
    after: dict[str, datetime] = field(default_factory=dict)  # column -> exclusive bound
    before: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunOrder:
    key: SortKey = "created_at"
    descending: bool = True


# Where a keyset page starts: after the row with this sort value and id.
Position = tuple[Any, str]


def _labels(filters: RunFilters) -> list[Label]:
    return ([("tag", key, value) for key, value in filters.tags]
            + [("meta", key, value) for key, value in filters.metadata])


def _past(sort: Any, run_id: Any, order: RunOrder,
          after: Position | None) -> list[ColumnElement[bool]]:
    """The keyset: strictly after ``after`` in ``order``, on these columns."""
    if after is None:
        return []
    value, last_id = after
    if order.descending:
        return [or_(sort < value, and_(sort == value, run_id < last_id))]
    return [or_(sort > value, and_(sort == value, run_id > last_id))]


def _conditions(project_id: str, filters: RunFilters, order: RunOrder,
                after: Position | None, plan: ReadPlan) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = [runs.c.project_id == project_id]
    for column, value in filters.equal.items():
        found.append(runs.c[column] == value)
    if filters.statuses:
        found.append(runs.c.status.in_(filters.statuses))
    for label in _labels(filters):
        if label != plan.label:  # checked run by run, by the label's whole key
            other = run_labels.alias()
            found.append(exists().where(
                *label_matches(other, project_id, label),
                other.c.created_at == runs.c.created_at, other.c.run_id == runs.c.id))
    for bounds, compare in ((filters.after, operator.gt), (filters.before, operator.lt)):
        for column, bound in bounds.items():
            time = runs.c[column]
            found.append(compare(not_indexed(time) if column in plan.unindexed else time,
                                 bound))
    sort = runs.c[order.key]
    if order.key in ("started_at", "finished_at"):
        found.append(sort.is_not(None))
    return found + _past(sort, runs.c.id, order, after)


def _ordered(columns: Any, order: RunOrder) -> tuple[Any, Any]:
    return _in_order(columns[order.key], columns.id, order)


def _in_order(sort: Any, run_id: Any, order: RunOrder) -> tuple[Any, Any]:
    return (sort.desc(), run_id.desc()) if order.descending else (sort.asc(), run_id.asc())


def runs_query(project_id: str, filters: RunFilters, order: RunOrder, limit: int,
               after: Position | None = None, offset: int = 0,
               plan: ReadPlan = ReadPlan()) -> Select[Any]:  # noqa: B008 (frozen: safe to share)
    if plan.label is not None:
        return _label_led(project_id, filters, order, limit, after, offset, plan)
    if len(filters.statuses) > 1 and order.key == "created_at":
        return _merged_by_status(project_id, filters, order, limit, after, offset, plan)
    return (select(runs).where(*_conditions(project_id, filters, order, after, plan))
            .order_by(*_ordered(runs.c, order)).limit(limit).offset(offset))


def _label_led(project_id: str, filters: RunFilters, order: RunOrder, limit: int,
               after: Position | None, offset: int, plan: ReadPlan) -> Select[Any]:
    """The label's runs, read from its key: in created order straight off the key (its
    next columns are created_at and the run id); in another order all of them (few, or
    the plan would not have chosen this) sorted."""
    assert plan.label is not None
    leading = run_labels.alias("leading")
    found = select(runs).select_from(leading.join(runs, runs.c.id == leading.c.run_id))
    found = found.where(*label_matches(leading, project_id, plan.label))
    if order.key != "created_at":
        return (found.where(*_conditions(project_id, filters, order, after, plan))
                .order_by(*_in_order(not_indexed(runs.c[order.key]),
                                     not_indexed(runs.c.id), order))
                .limit(limit).offset(offset))
    # In created order the key's own created_at bounds and orders the read.
    rest = replace(filters,
                   after={c: b for c, b in filters.after.items() if c != "created_at"},
                   before={c: b for c, b in filters.before.items() if c != "created_at"})
    if (bound := filters.after.get("created_at")) is not None:
        found = found.where(leading.c.created_at > bound)
    if (bound := filters.before.get("created_at")) is not None:
        found = found.where(leading.c.created_at < bound)
    return (found.where(*_conditions(project_id, rest, order, None, plan),
                        *_past(leading.c.created_at, leading.c.run_id, order, after))
            .order_by(*_in_order(leading.c.created_at, leading.c.run_id, order))
            .limit(limit).offset(offset))


def _merged_by_status(project_id: str, filters: RunFilters, order: RunOrder, limit: int,
                      after: Position | None, offset: int, plan: ReadPlan) -> Select[Any]:
    """Several statuses in created order: one read per status, each down its own range of
    the (project, status, created_at, id) index and cut at the page's end, merged. As one
    read the statuses could only be checked row by row along the project's created index,
    which for rare statuses walks most of the project's runs."""
    parts = []
    for status in filters.statuses:
        one = replace(filters, statuses=(status,))
        part = (select(runs).where(*_conditions(project_id, one, order, after, plan))
                .order_by(*_ordered(runs.c, order)).limit(offset + limit).subquery())
        parts.append(select(part))
    merged = union_all(*parts).subquery()
    return select(merged).order_by(*_ordered(merged.c, order)).limit(limit).offset(offset)


def with_implied_bounds(filters: RunFilters, order: RunOrder) -> RunFilters:
    """The same filters, with the bounds they imply on the columns that lead reads: a run
    is created before it starts or ends (the projector keeps its times so), so a bound
    "started/finished before t" bounds created_at too, and "created after t" bounds the
    time the list is sorted by. The same runs match; the sort's index or the created
    index then reads only the part of itself where they can be."""
    before, after = dict(filters.before), dict(filters.after)
    if limits := [before[c] for c in ("started_at", "finished_at") if c in before]:
        before["created_at"] = min([*limits, *([before["created_at"]]
                                               if "created_at" in before else [])])
    if order.key in ("started_at", "finished_at") and "created_at" in after:
        after[order.key] = max(after["created_at"], after.get(order.key, after["created_at"]))
    return replace(filters, after=after, before=before)


async def list_runs(engine: AsyncEngine, project_id: str, filters: RunFilters,
                    order: RunOrder, limit: int, after: Position | None = None,
                    offset: int = 0, plan: ReadPlan | None = None) -> list[RunView]:
    """Up to ``limit`` runs of the project in the order asked, after ``after`` (keyset) or
    skipping ``offset`` rows; read by ``plan``, or by the one the filters' sizes choose
    (projections.run_list_plan)."""
    filters = with_implied_bounds(filters, order)
    async with engine.connect() as conn:
        if plan is None:
            plan = await plan_read(conn, project_id, _labels(filters),
                                   bool(filters.equal or filters.statuses), filters.after,
                                   filters.before, order.key)
        rows = await conn.execute(
            runs_query(project_id, filters, order, limit, after, offset, plan))
        return [_view(row) for row in rows]


def _view(row: Row[Any]) -> RunView:
    return msgspec.convert(fields_of(row), RunView, strict=False)


def position_of(view: RunView, order: RunOrder) -> Position:
    """The keyset position just after ``view`` in ``order``."""
    return getattr(view, order.key), view.id


async def children_of(engine: AsyncEngine, project_id: str, run_id: str, limit: int,
                      after: Position | None = None) -> list[RunView]:
    """A run's children, oldest first (ix_runs_parent)."""
    filters = RunFilters(equal={"parent_run_id": run_id})
    return await list_runs(engine, project_id, filters, RunOrder("created_at", False),
                           limit, after)


async def ancestors_of(engine: AsyncEngine, project_id: str, run: RunView,
                       limit: int) -> list[RunView]:
    """The run's parent, its parent's parent, ... up to the root (at most ``limit``), by
    the primary key, one read per generation (a lineage is at most 100 deep)."""
    found: list[RunView] = []
    parent = run.parent_run_id
    async with engine.connect() as conn:
        while parent is not None and len(found) < limit:
            row = (await conn.execute(select(runs).where(
                (runs.c.id == parent) & (runs.c.project_id == project_id)))).first()
            if row is None:
                break
            view = _view(row)
            found.append(view)
            parent = view.parent_run_id
    return found
