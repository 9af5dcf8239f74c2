"""Record counters add up the run tree (seed 004: a flow's counters are its exports' and
imports'): a parent's ``child_counters`` is the sum over its children of each child's own
counters plus its ``child_counters``, kept per batch for the parents whose children
reported, up to the root."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select, update

from projections.tables import runs

# A lineage is at most this deep (services.domain.state.MAX_LINEAGE_DEPTH), so the walk
# up ends; the bound also stops a cycle a corrupt row could make.
MAX_LEVELS = 100
# Bind parameters per IN list (as the projector's).
IN_CHUNK = 500


def _add(total: dict[str, int], counters: dict[str, Any] | None) -> None:
    for name, value in (counters or {}).items():
        if isinstance(value, int):
            total[name] = total.get(name, 0) + value


def sum_into_parents(conn: Connection, changed: Iterable[str],
                     inserted: Iterable[str] = ()) -> None:
    """Recompute ``child_counters`` above the runs whose counters ``changed``, and of the
    runs just ``inserted`` that already have children: a parent's and a child's events
    are on different partitions, and a replay (or a projector catching up) may read the
    child's counters before its parent exists; the parent's insert then sums them."""
    level = _parents_of(conn, set(changed)) | _with_children(conn, set(inserted))
    for _ in range(MAX_LEVELS):
        if not level:
            return
        for parent in sorted(level):
            total: dict[str, int] = {}
            rows = conn.execute(select(runs.c.counters, runs.c.child_counters)
                                .where(runs.c.parent_run_id == parent))
            for own, children in rows:
                _add(total, own)
                _add(total, children)
            conn.execute(update(runs).where(runs.c.id == parent)
                         .values(child_counters=total))
        level = _parents_of(conn, level)


def _parents_of(conn: Connection, run_ids: set[str]) -> set[str]:
    wanted = sorted(run_ids)
    parents: set[str] = set()
    for i in range(0, len(wanted), IN_CHUNK):
        rows = conn.execute(select(runs.c.parent_run_id)
                            .where(runs.c.id.in_(wanted[i:i + IN_CHUNK])))
        parents.update(parent for (parent,) in rows if parent is not None)
    return parents


def _with_children(conn: Connection, run_ids: set[str]) -> set[str]:
    """Those of ``run_ids`` that some run names as its parent (ix_runs_parent)."""
    wanted = sorted(run_ids)
    found: set[str] = set()
    for i in range(0, len(wanted), IN_CHUNK):
        rows = conn.execute(select(runs.c.parent_run_id).distinct()
                            .where(runs.c.parent_run_id.in_(wanted[i:i + IN_CHUNK])))
        found.update(parent for (parent,) in rows)
    return found
