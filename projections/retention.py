"""Retention in the read models (seed 004's purgeAt): each run gets ``purge_at`` as it
ends, and the sweep takes the runs whose time came out of every table that holds them.

- ``purge_at`` is the run's end plus the project's retention in force then
  (``services.domain.retention``): a setting applies to runs that end at or after the
  moment it was set. The projector writes it with the run's end; a setting applied after
  runs that ended after it (another partition was ahead) corrects those runs, one
  indexed range read of the project's runs ended since the setting, so a replay gives
  the same values whatever the interleaving.
- The sweep (``sweep_sync``) reads the due runs by ``ix_runs_purge_at`` (never a scan),
  at most ``limit`` per call, deletes them from ``runs``, ``run_events``, ``run_labels``
  and ``dead_letters``, and records each in ``purged_runs``. Aggregates (``project_days``,
  the gates and waiting counts) are left as they are: a purged run was counted and stays
  counted; ended runs are in none of the live counts.
- An event of a purged run that comes late is dropped (``purged_among``): it must not
  make a row, or part of one, for a run that is gone. Its job's position still moves.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.rows import aware
from projections.tables import (
    dead_letters,
    label_digest,
    project_retention,
    purged_runs,
    run_events,
    run_labels,
    runs,
)
from services.domain.retention import DEFAULT_RETENTION_DAYS, Setting, purge_at

IN_CHUNK = 500
SWEEP_BATCH = 500  # runs per sweep transaction: the projector's events wait meanwhile


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    wanted = sorted(set(values))
    for i in range(0, len(wanted), IN_CHUNK):
        yield wanted[i:i + IN_CHUNK]


def settings_of(conn: Connection, project_ids: Iterable[str]) -> dict[str, list[Setting]]:
    """Every retention setting of these projects (a handful each: set by hand)."""
    found: dict[str, list[Setting]] = {}
    for chunk in _chunks(project_ids):
        rows = conn.execute(select(project_retention).where(
            project_retention.c.project_id.in_(chunk)))
        for row in rows:
            found.setdefault(str(row.project_id), []).append(
                (aware(row.since), int(row.seq), int(row.run_retention_days)))
    return found


def write_retention(conn: Connection, settings: list[dict[str, Any]],
                    ended: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Record a batch's new settings, then give each run the batch ended its purge_at.

    ``ended``: run id -> (project id, the row or changes the batch writes for it), the
    purge_at goes into that dict before it is written. Call before the runs are written;
    then ``correct_after_settings`` once they are."""
    if settings:
        conn.execute(insert(project_retention), settings)
    if not ended:
        return
    known = settings_of(conn, {project for project, _ in ended.values()})
    for project, row in ended.values():
        row["purge_at"] = purge_at(known.get(project, ()), row["finished_at"])


def correct_after_settings(conn: Connection, settings: list[dict[str, Any]]) -> None:
    """Runs of a project that ended at or after a setting now applied, whose purge_at
    came from an older one (their end was applied first): set again. In a live projector
    these are the runs that ended within the lag between partitions."""
    if not settings:
        return
    known = settings_of(conn, {s["project_id"] for s in settings})
    for project, since in sorted({(s["project_id"], s["since"]) for s in settings}):
        rows = conn.execute(select(runs.c.id, runs.c.finished_at, runs.c.purge_at).where(
            (runs.c.project_id == project) & (runs.c.finished_at >= since)))
        fixes = [{"b_id": rid, "purge_at": due} for rid, finished, was in rows
                 if finished is not None
                 and (due := purge_at(known.get(project, ()), aware(finished))) != aware(was)]
        if fixes:
            conn.execute(update(runs).where(runs.c.id == bindparam("b_id"))
                         .values(purge_at=bindparam("purge_at")), fixes)


def purged_among(conn: Connection, run_ids: Iterable[str]) -> set[str]:
    """Which of these runs the sweep took (by the primary key)."""
    found: set[str] = set()
    for chunk in _chunks(run_ids):
        rows = conn.execute(select(purged_runs.c.run_id).where(purged_runs.c.run_id.in_(chunk)))
        found.update(str(run_id) for (run_id,) in rows)
    return found


# The due runs, oldest purge_at first: a range of the partial index ix_runs_purge_at.
DUE_RUNS = (select(runs.c.id, runs.c.project_id, runs.c.created_at, runs.c.tags,
                   runs.c.metadata)
        .where(runs.c.purge_at <= bindparam("now"))
        .order_by(runs.c.purge_at).limit(bindparam("limit")))


def sweep_sync(conn: Connection, now: datetime, limit: int = SWEEP_BATCH) -> list[str]:
    """Purge up to ``limit`` runs whose purge_at is at or before ``now``, within
    ``conn``'s transaction; returns their ids (fewer than ``limit``: none is left due)."""
    due = conn.execute(DUE_RUNS, {"now": now, "limit": limit}).all()
    if not due:
        return []
    ids = [str(row.id) for row in due]
    # run_labels is keyed by (project, kind, key, value digest, created_at, run): the
    # run's own row names each of its labels' whole key, so no index by run is needed.
    labels = [{"b_project": row.project_id, "b_kind": kind, "b_key": key,
               "b_digest": label_digest(value), "b_created": row.created_at, "b_run": row.id}
              for row in due
              for kind, entries in (("tag", row.tags), ("meta", row.metadata))
              for key, value in (entries or {}).items()]
    if labels:
        conn.execute(delete(run_labels).where(
            (run_labels.c.project_id == bindparam("b_project"))
            & (run_labels.c.kind == bindparam("b_kind"))
            & (run_labels.c.key == bindparam("b_key"))
            & (run_labels.c.value_digest == bindparam("b_digest"))
            & (run_labels.c.created_at == bindparam("b_created"))
            & (run_labels.c.run_id == bindparam("b_run"))), labels)
    for chunk in _chunks(ids):
        conn.execute(delete(run_events).where(run_events.c.run_id.in_(chunk)))
        conn.execute(delete(dead_letters).where(dead_letters.c.run_id.in_(chunk)))
        conn.execute(delete(runs).where(runs.c.id.in_(chunk)))
    conn.execute(insert(purged_runs), [{"run_id": row.id, "project_id": row.project_id,
                                        "purged_at": now} for row in due])
    return ids


async def sweep(engine: AsyncEngine, now: datetime, limit: int = SWEEP_BATCH) -> list[str]:
    """One sweep transaction (see ``sweep_sync``)."""
    async with engine.begin() as conn:
        return await conn.run_sync(sweep_sync, now, limit)


async def purged_at(engine: AsyncEngine, project_id: str, run_id: str) -> datetime | None:
    """When the project's run was purged; None if it was not (or is another project's)."""
    async with engine.connect() as conn:
        found = (await conn.execute(select(purged_runs.c.purged_at).where(
            (purged_runs.c.run_id == run_id)
            & (purged_runs.c.project_id == project_id)))).scalar()
    return None if found is None else aware(found)


async def retention_of(engine: AsyncEngine, project_id: str) -> tuple[int, datetime | None]:
    """The project's retention now: days, and since when (None: the default)."""
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(project_retention.c.run_retention_days, project_retention.c.since)
            .where(project_retention.c.project_id == project_id)
            .order_by(project_retention.c.since.desc(), project_retention.c.seq.desc())
            .limit(1))).first()
    if row is None:
        return DEFAULT_RETENTION_DAYS, None
    return int(row[0]), aware(row[1])
