"""Which index leads a run-list read: chosen per request from how many rows the filters'
own indexes hold, counted up to a small cap.

SQLite keeps no statistics of value ranges, so left to itself it guesses: it read every
run with a common tag before taking the first 50 in created order, and sorted the
100,000 runs started after a date to show the newest 50. Counting first costs an index
read of at most ``PROBE_CAP`` entries per filter, and settles it:

- A label (tag or metadata entry) with few runs leads: its runs are read from its key
  and sorted (at most ``PROBE_CAP`` of them). In created order a label always leads,
  whatever its size, when no other filter has an index of its own: its key is in created
  order, so the page is read straight off it. Every other label is checked run by run,
  by its whole key (the run's created_at and id complete it).
- A time range on another column than the sort's, holding at least ``PROBE_CAP`` runs,
  does not lead: the sort's index does, and each run's time is checked as it is read
  (most runs match, so a page comes soon). A narrower range leads, and its few runs are
  sorted.

PostgreSQL keeps statistics and plans by cost; the same plan is asked of it, and the
marks that keep an index from leading (``not_indexed``) mean nothing there.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from projections.tables import label_digest, run_labels, runs

PROBE_CAP = 2000
# Several labels all over PROBE_CAP are counted again up to this, to lead with the
# rarest: the others are checked on every run it leads to.
TIE_CAP = 20_000

# A filter on a run's tag ("tag") or metadata ("meta"): kind, key, value.
Label = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class ReadPlan:
    label: Label | None = None  # the label whose key leads the read, if one does
    unindexed: frozenset[str] = frozenset()  # time columns whose index must not lead


class not_indexed(FunctionElement[Any]):  # named as the func.x it stands beside
    """``column``, which SQLite must not read through an index here (its unary ``+``):
    the planner then leads with an index we chose. Other stores: the column itself."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(not_indexed)
def _plain(element: not_indexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses.clauses[0], **kw)


@compiles(not_indexed, "sqlite")
def _unary_plus(element: not_indexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses.clauses[0], **kw)


def label_matches(table: Any, project_id: str, label: Label) -> list[ColumnElement[bool]]:
    """The label's rows in ``table`` (run_labels or an alias of it): the key's prefix,
    then the value itself (a digest collision costs a row read, never a wrong row)."""
    kind, key, value = label
    return [table.c.project_id == project_id, table.c.kind == kind, table.c.key == key,
            table.c.value_digest == label_digest(value), table.c.value == value]


async def _capped_count(conn: AsyncConnection, where: list[ColumnElement[bool]],
                        cap: int) -> int:
    """How many rows match ``where``, counting no further than ``cap``."""
    capped = select(literal(1)).where(*where).limit(cap).subquery()
    return int((await conn.execute(select(func.count()).select_from(capped))).scalar_one())


async def _label_count(conn: AsyncConnection, project_id: str, label: Label,
                       cap: int) -> int:
    kind, key, value = label
    return await _capped_count(conn, [
        run_labels.c.project_id == project_id, run_labels.c.kind == kind,
        run_labels.c.key == key, run_labels.c.value_digest == label_digest(value)], cap)


async def _range_count(conn: AsyncConnection, project_id: str, column: str,
                       after: Any, before: Any) -> int:
    where = [runs.c.project_id == project_id, runs.c[column].is_not(None)]
    if after is not None:
        where.append(runs.c[column] > after)
    if before is not None:
        where.append(runs.c[column] < before)
    return await _capped_count(conn, where, PROBE_CAP)


async def plan_read(conn: AsyncConnection, project_id: str, labels: list[Label],
                    has_indexed_equality: bool, after: dict[str, Any],
                    before: dict[str, Any], sort_key: str) -> ReadPlan:
    """The plan for a page of the run list with these filters, in ``sort_key`` order."""
    if labels:
        counted = [(await _label_count(conn, project_id, label, PROBE_CAP), label)
                   for label in labels]
        if len(labels) > 1 and all(size >= PROBE_CAP for size, _ in counted):
            counted = [(await _label_count(conn, project_id, label, TIE_CAP), label)
                       for label in labels]
        size, rarest = min(counted)
        in_key_order = sort_key == "created_at" and not has_indexed_equality
        if size < PROBE_CAP or in_key_order:
            ranged = frozenset(c for c in (*after, *before) if c != sort_key)
            return ReadPlan(label=rarest, unindexed=ranged)
    wide: set[str] = set()
    for column in sorted({*after, *before} - {sort_key}):
        if await _range_count(conn, project_id, column, after.get(column),
                              before.get(column)) >= PROBE_CAP:
            wide.add(column)
    return ReadPlan(unindexed=frozenset(wide))
