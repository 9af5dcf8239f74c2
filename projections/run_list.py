"""The run list: a project's runs filtered, sorted, and paged by keyset or by offset.

Every filter and every sort has an index that ends in the keyset's columns (the sort's
column, then the run id): see the runs table. A keyset page continues strictly after the
last row of the page before it, so runs that arrive while a client pages are never
repeated, and none that existed is skipped.

Several statuses in created order are read status by status and merged (one index range
each). Other combinations take the most selective index and check the rest row by row:
cheap when the other filters match often.

Sorting by ``started_at`` or ``finished_at`` lists only the runs that have that time (a
run that never started has no place in that order); filter by status to see the others.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import ColumnElement, Row, Select, and_, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.rows import fields_of
from projections.tables import label_digest, run_labels, runs
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


def _conditions(project_id: str, filters: RunFilters, order: RunOrder,
                after: Position | None) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = [runs.c.project_id == project_id]
    for column, value in filters.equal.items():
        found.append(runs.c[column] == value)
    if filters.statuses:
        found.append(runs.c.status.in_(filters.statuses))
    for kind, pairs in (("tag", filters.tags), ("meta", filters.metadata)):
        for key, value in pairs:
            found.append(runs.c.id.in_(select(run_labels.c.run_id).where(
                (run_labels.c.project_id == project_id) & (run_labels.c.kind == kind)
                & (run_labels.c.key == key)
                & (run_labels.c.value_digest == label_digest(value))
                & (run_labels.c.value == value))))
    for column, bound in filters.after.items():
        found.append(runs.c[column] > bound)
    for column, bound in filters.before.items():
        found.append(runs.c[column] < bound)
    sort = runs.c[order.key]
    if order.key in ("started_at", "finished_at"):
        found.append(sort.is_not(None))
    if after is not None:
        value, run_id = after
        if order.descending:
            found.append(or_(sort < value, and_(sort == value, runs.c.id < run_id)))
        else:
            found.append(or_(sort > value, and_(sort == value, runs.c.id > run_id)))
    return found


def _ordered(columns: Any, order: RunOrder) -> tuple[Any, Any]:
    sort, run_id = columns[order.key], columns.id
    return (sort.desc(), run_id.desc()) if order.descending else (sort.asc(), run_id.asc())


def runs_query(project_id: str, filters: RunFilters, order: RunOrder, limit: int,
               after: Position | None = None, offset: int = 0) -> Select[Any]:
    if len(filters.statuses) > 1 and order.key == "created_at":
        return _merged_by_status(project_id, filters, order, limit, after, offset)
    return (select(runs).where(*_conditions(project_id, filters, order, after))
            .order_by(*_ordered(runs.c, order)).limit(limit).offset(offset))


def _merged_by_status(project_id: str, filters: RunFilters, order: RunOrder, limit: int,
                      after: Position | None, offset: int) -> Select[Any]:
    """Several statuses in created order: one read per status, each down its own range of
    the (project, status, created_at, id) index and cut at the page's end, merged. As one
    read the statuses could only be checked row by row along the project's created index,
    which for rare statuses walks most of the project's runs."""
    parts = []
    for status in filters.statuses:
        one = RunFilters(equal=filters.equal, statuses=(status,), tags=filters.tags,
                         metadata=filters.metadata, after=filters.after,
                         before=filters.before)
        part = (select(runs).where(*_conditions(project_id, one, order, after))
                .order_by(*_ordered(runs.c, order)).limit(offset + limit).subquery())
        parts.append(select(part))
    merged = union_all(*parts).subquery()
    return select(merged).order_by(*_ordered(merged.c, order)).limit(limit).offset(offset)


async def list_runs(engine: AsyncEngine, project_id: str, filters: RunFilters,
                    order: RunOrder, limit: int, after: Position | None = None,
                    offset: int = 0) -> list[RunView]:
    """Up to ``limit`` runs of the project in the order asked, after ``after`` (keyset) or
    skipping ``offset`` rows."""
    query = runs_query(project_id, filters, order, limit, after, offset)
    async with engine.connect() as conn:
        rows = await conn.execute(query)
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
