"""The running counts per job and per concurrency key (tables ``job_gates``,
``key_gates``), moved by each batch of run events: what waiting_reason reads.

A batch's effect is the difference, per run, between running before it (the stored row)
and after it (the folded row): one read of the touched runs that changed status, one
read of the touched gates, and one write per kind of change; never a count over runs.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, insert, or_, select, update

from projections.tables import job_gates, key_gates, runs

IN_CHUNK = 500
RUNNING = frozenset({"running", "canceling"})


def _stored(conn: Connection, run_ids: list[str]) -> dict[str, tuple[str, str, str | None]]:
    found: dict[str, tuple[str, str, str | None]] = {}
    for i in range(0, len(run_ids), IN_CHUNK):
        rows = conn.execute(select(runs.c.id, runs.c.job_id, runs.c.status,
                                   runs.c.concurrency_key)
                            .where(runs.c.id.in_(run_ids[i:i + IN_CHUNK])))
        found.update((str(r[0]), (str(r[1]), str(r[2]), r[3])) for r in rows)
    return found


def write_gates(conn: Connection, new_runs: Iterable[dict[str, Any]],
                changed_runs: Mapping[str, dict[str, Any]]) -> None:
    jobs: dict[str, int] = {}
    keys: dict[tuple[str, str], int] = {}

    def move(job_id: str, key: str | None, delta: int) -> None:
        if delta:
            jobs[job_id] = jobs.get(job_id, 0) + delta
            if key:
                keys[(job_id, key)] = keys.get((job_id, key), 0) + delta

    for row in new_runs:
        move(row["job_id"], row["concurrency_key"], int(row["status"] in RUNNING))
    moved = sorted(rid for rid, changes in changed_runs.items() if "status" in changes)
    for run_id, (job_id, status, key) in _stored(conn, moved).items():
        after = changed_runs[run_id]["status"]
        move(job_id, key, int(after in RUNNING) - int(status in RUNNING))
    _apply(conn, job_gates, {(j,): d for j, d in jobs.items() if d}, ("job_id",))
    _apply(conn, key_gates, {k: d for k, d in keys.items() if d},
           ("job_id", "concurrency_key"))


def _apply(conn: Connection, table: Table, deltas: dict[tuple[str, ...], int],
           names: tuple[str, ...]) -> None:
    if not deltas:
        return
    cols = [table.c[name] for name in names]
    current: dict[tuple[str, ...], int] = {}
    wanted = list(deltas)
    for i in range(0, len(wanted), IN_CHUNK):
        match = or_(*(and_(*(c == v for c, v in zip(cols, ids, strict=True)))
                      for ids in wanted[i:i + IN_CHUNK]))
        for row in conn.execute(select(*cols, table.c.running).where(match)):
            current[tuple(str(v) for v in row[:-1])] = int(row[-1])
    for ids, delta in deltas.items():
        where = and_(*(c == v for c, v in zip(cols, ids, strict=True)))
        count = current.get(ids, 0) + delta
        if ids not in current:
            if count > 0:
                conn.execute(insert(table).values(
                    **dict(zip(names, ids, strict=True)), running=count))
        elif count > 0:
            conn.execute(update(table).where(where).values(running=count))
        else:
            conn.execute(delete(table).where(where))
