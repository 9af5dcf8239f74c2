"""The running counts per job and per concurrency key (tables ``job_gates``,
``key_gates``), moved by each batch of run events: what waiting_reason reads; and the
counts a project's quotas are checked against (``project_waiting``, ``project_days``), and
each job's queue depth (``job_waiting``).

A batch's effect is the difference, per run, between running before it (the stored row)
and after it (the folded row): one read of the touched runs that changed status, one
read of the touched gates, and one write per kind of change; never a count over runs.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, insert, or_, select, update

from projections.tables import (
    job_gates,
    job_waiting,
    key_gates,
    project_days,
    project_waiting,
    runs,
)

IN_CHUNK = 500
RUNNING = frozenset({"running", "canceling"})
# What a project's max_queued_runs counts.
WAITING = frozenset({"queued", "delayed"})

Stored = tuple[str, str, str | None, str]  # job id, status, concurrency key, project id


def _stored(conn: Connection, run_ids: list[str]) -> dict[str, Stored]:
    found: dict[str, Stored] = {}
    for i in range(0, len(run_ids), IN_CHUNK):
        rows = conn.execute(select(runs.c.id, runs.c.job_id, runs.c.status,
                                   runs.c.concurrency_key, runs.c.project_id)
                            .where(runs.c.id.in_(run_ids[i:i + IN_CHUNK])))
        found.update((str(r[0]), (str(r[1]), str(r[2]), r[3], str(r[4]))) for r in rows)
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

    waiting: dict[tuple[str, ...], int] = {}
    job_waits: dict[tuple[str, ...], int] = {}
    days: dict[tuple[str, ...], int] = {}
    for row in new_runs:
        move(row["job_id"], row["concurrency_key"], int(row["status"] in RUNNING))
        project = (row["project_id"],)
        waiting[project] = waiting.get(project, 0) + int(row["status"] in WAITING)
        job = (row["job_id"],)
        job_waits[job] = job_waits.get(job, 0) + int(row["status"] in WAITING)
        day = (row["project_id"], row["created_at"].astimezone(UTC).date().isoformat())
        days[day] = days.get(day, 0) + 1
    moved = sorted(rid for rid, changes in changed_runs.items() if "status" in changes)
    for run_id, (job_id, status, key, project_id) in _stored(conn, moved).items():
        after = changed_runs[run_id]["status"]
        move(job_id, key, int(after in RUNNING) - int(status in RUNNING))
        delta = int(after in WAITING) - int(status in WAITING)
        waiting[(project_id,)] = waiting.get((project_id,), 0) + delta
        job_waits[(job_id,)] = job_waits.get((job_id,), 0) + delta
    _apply(conn, job_gates, {(j,): d for j, d in jobs.items() if d}, ("job_id",))
    _apply(conn, key_gates, {k: d for k, d in keys.items() if d},
           ("job_id", "concurrency_key"))
    _apply(conn, project_waiting, {k: d for k, d in waiting.items() if d}, ("project_id",))
    _apply(conn, job_waiting, {k: d for k, d in job_waits.items() if d}, ("job_id",))
    _apply(conn, project_days, days, ("project_id", "day"))


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
