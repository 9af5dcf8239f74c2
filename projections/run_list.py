"""The run list: a project's runs filtered, sorted, and paged by keyset or by offset.

Every filter and every sort has an index that ends in the keyset's columns (the sort's
column, then the run id): see the runs table. A keyset page continues strictly after the
last row of the page before it, so runs that arrive while a client pages are never
repeated, and none that existed is skipped.

Sorting by ``started_at`` or ``finished_at`` lists only the runs that have that time (a
run that never started has no place in that order); filter by status to see the others.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import ColumnElement, Row, Select, and_, or_, select
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


def runs_query(project_id: str, filters: RunFilters, order: RunOrder, limit: int,
               after: Position | None = None, offset: int = 0) -> Select[Any]:
    sort = runs.c[order.key]
    keys = (sort.desc(), runs.c.id.desc()) if order.descending else (sort.asc(), runs.c.id.asc())
    return (select(runs).where(*_conditions(project_id, filters, order, after))
            .order_by(*keys).limit(limit).offset(offset))


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
