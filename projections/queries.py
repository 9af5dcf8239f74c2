"""Query functions. Every one takes the caller's project and filters by it."""

from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Row, Select, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.job_search import PREFIX_END
from projections.projector import load_offsets
from projections.rows import aware, fields_of
from projections.tables import (
    job_gates,
    job_positions,
    job_tags,
    job_terms,
    job_versions,
    jobs,
    key_gates,
    project_days,
    project_quotas,
    project_waiting,
    run_events,
    runs,
)
from projections.views import JobVersionView, JobView, RunEventView, RunView
from services.domain.holds import Holds, waiting_reason
from services.domain.quotas import Quotas, Usage

V = TypeVar("V", JobView, RunView, RunEventView, JobVersionView)

__all__ = ["find_job", "get_job", "get_job_by_slug", "get_job_version", "get_run",
           "job_positions_of", "list_job_versions", "list_jobs", "list_run_events", "load_offsets"]


def _view(row: Row[Any], view: type[V]) -> V:
    return msgspec.convert(fields_of(row), view, strict=False)


# Built once: constructing a statement costs more than running it on a hot path.
# A deleted job is gone for every read (its runs are not).
_JOB_BY_ID_OR_SLUG = (select(jobs)
                      .where(jobs.c.project_id == bindparam("project_id"))
                      .where(jobs.c.deleted_at.is_(None))
                      .where(or_(jobs.c.id == bindparam("key"), jobs.c.slug == bindparam("key")))
                      .order_by((jobs.c.id == bindparam("key")).desc()).limit(1))
_JOB_BY_ID = select(jobs).where((jobs.c.id == bindparam("key"))
                                & (jobs.c.project_id == bindparam("project_id"))
                                & jobs.c.deleted_at.is_(None))
_JOB_BY_SLUG = select(jobs).where((jobs.c.slug == bindparam("key"))
                                  & (jobs.c.project_id == bindparam("project_id"))
                                  & jobs.c.deleted_at.is_(None))
_RUN_BY_ID = select(runs).where((runs.c.id == bindparam("key"))
                                & (runs.c.project_id == bindparam("project_id")))


async def _one(engine: AsyncEngine, statement: Select[Any], project_id: str,
               key: str) -> Row[Any] | None:
    async with engine.connect() as conn:
        result = await conn.execute(statement, {"project_id": project_id, "key": key})
        return result.first()


async def get_job(engine: AsyncEngine, project_id: str, job_id: str) -> JobView | None:
    row = await _one(engine, _JOB_BY_ID, project_id, job_id)
    return None if row is None else _view(row, JobView)


async def get_job_by_slug(engine: AsyncEngine, project_id: str, slug: str) -> JobView | None:
    row = await _one(engine, _JOB_BY_SLUG, project_id, slug)
    return None if row is None else _view(row, JobView)


async def find_job(engine: AsyncEngine, project_id: str, id_or_slug: str) -> JobView | None:
    """A job by its id or, failing that, its slug, in one query."""
    row = await _one(engine, _JOB_BY_ID_OR_SLUG, project_id, id_or_slug)
    return None if row is None else _view(row, JobView)


_HOLDS = (select(jobs.c.spec, job_gates.c.running, key_gates.c.running, jobs.c.held_until,
                 jobs.c.held_reason)
          .select_from(jobs.outerjoin(job_gates, job_gates.c.job_id == jobs.c.id)
                       .outerjoin(key_gates, (key_gates.c.job_id == jobs.c.id)
                                  & (key_gates.c.concurrency_key == bindparam("ckey"))))
          .where(jobs.c.id == bindparam("job_id")))


async def get_run(engine: AsyncEngine, project_id: str, run_id: str) -> RunView | None:
    row = await _one(engine, _RUN_BY_ID, project_id, run_id)
    if row is None:
        return None
    view = _view(row, RunView)
    if view.status == "delayed" and view.attempt == 0 and view.scheduled_at is not None:
        return msgspec.structs.replace(view, waiting_reason="scheduled")
    if view.status != "queued":
        return view
    # Why it waits: from the job's limits and the running counts, one indexed read.
    async with engine.connect() as conn:
        found = (await conn.execute(_HOLDS, {"job_id": view.job_id,
                                             "ckey": view.concurrency_key or ""})).first()
    if found is None:
        return view
    spec, job_running, key_running, held_until, held_reason = found
    holds = Holds(max_concurrency=spec.get("max_concurrency"),
                  max_concurrency_per_key=spec.get("max_concurrency_per_key"),
                  job_running=job_running or 0, key_running=key_running or 0,
                  held_reason=held_reason, held_until=aware(held_until))
    reason = waiting_reason(view.status, view.concurrency_key, holds, datetime.now(UTC))
    return msgspec.structs.replace(view, waiting_reason=reason)


async def list_run_events(engine: AsyncEngine, project_id: str,
                          run_id: str) -> list[RunEventView]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(run_events).where(
            (run_events.c.run_id == run_id) & (run_events.c.project_id == project_id))
            .order_by(run_events.c.seq))
        return [_view(row, RunEventView) for row in rows]


async def job_positions_of(engine: AsyncEngine, job_ids: list[str]) -> dict[str, int]:
    """The highest seq the projection has applied, for each of these jobs that has one."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(job_positions.c.job_id, job_positions.c.last_seq)
                                  .where(job_positions.c.job_id.in_(job_ids)))
        return {str(job_id): int(seq) for job_id, seq in rows}



async def list_job_versions(engine: AsyncEngine, project_id: str, job_id: str,
                            below: int | None, limit: int) -> list[JobVersionView]:
    """A job's versions, newest first, those below ``below`` (the keyset cursor)."""
    query = select(job_versions).where((job_versions.c.job_id == job_id)
                                       & (job_versions.c.project_id == project_id))
    if below is not None:
        query = query.where(job_versions.c.version < below)
    async with engine.connect() as conn:
        rows = await conn.execute(query.order_by(job_versions.c.version.desc()).limit(limit))
        return [_view(row, JobVersionView) for row in rows]


async def get_job_version(engine: AsyncEngine, project_id: str, job_id: str,
                          version_id: str) -> JobVersionView | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(job_versions).where(
            (job_versions.c.version_id == version_id) & (job_versions.c.job_id == job_id)
            & (job_versions.c.project_id == project_id)))).first()
        return None if row is None else _view(row, JobVersionView)


class JobFilters(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool | None = None
    tags: list[tuple[str, str]] = msgspec.field(default_factory=list)  # all must match
    group_id: str | None = None
    environment_id: str | None = None
    # Each must begin a word of the job's name or slug (projections.job_search).
    words: list[str] = msgspec.field(default_factory=list)


def jobs_query(project_id: str, filters: JobFilters, after: tuple[datetime, str] | None,
               limit: int, offset: int) -> Select[Any]:
    """The project's jobs (not deleted), newest first, keyset after ``after``
    (created_at, id) or from ``offset``."""
    query = select(jobs).where((jobs.c.project_id == project_id) & jobs.c.deleted_at.is_(None))
    if filters.enabled is not None:
        query = query.where(jobs.c.enabled == filters.enabled)
    if filters.group_id is not None:
        query = query.where(jobs.c.group_id == filters.group_id)
    if filters.environment_id is not None:
        query = query.where(jobs.c.environment_id == filters.environment_id)
    for key, value in filters.tags:
        query = query.where(select(job_tags.c.job_id).where(
            (job_tags.c.job_id == jobs.c.id) & (job_tags.c.key == key)
            & (job_tags.c.value == value)).exists())
    for word in filters.words:
        query = query.where(jobs.c.id.in_(select(job_terms.c.job_id).where(
            (job_terms.c.project_id == project_id) & (job_terms.c.term >= word)
            & (job_terms.c.term < word + PREFIX_END))))
    if after is not None:
        created, job_id = after
        query = query.where((jobs.c.created_at < created)
                            | ((jobs.c.created_at == created) & (jobs.c.id < job_id)))
    query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
    return query.offset(offset) if offset else query


async def list_jobs(engine: AsyncEngine, project_id: str, filters: JobFilters,
                    after: tuple[datetime, str] | None, limit: int,
                    offset: int = 0) -> list[JobView]:
    query = jobs_query(project_id, filters, after, limit, offset)
    async with engine.connect() as conn:
        return [_view(row, JobView) for row in await conn.execute(query)]


async def run_statuses(engine: AsyncEngine, project_id: str,
                       run_ids: list[str]) -> dict[str, str]:
    """The current status of each of the project's runs named (missing ones left out)."""
    found: dict[str, str] = {}
    if not run_ids:
        return found
    async with engine.connect() as conn:
        for i in range(0, len(run_ids), 500):
            rows = await conn.execute(select(runs.c.id, runs.c.status).where(
                runs.c.project_id == project_id, runs.c.id.in_(run_ids[i:i + 500])))
            found.update((str(rid), str(status)) for rid, status in rows)
    return found


# The most reserved run ids one usage read looks up (the rest count as not yet visible:
# counted twice at worst, which refuses early and never lets a run past a quota).
MAX_RESERVED_LOOKUP = 20_000


async def project_usage(engine: AsyncEngine, project_id: str, day: str,
                        reserved: list[str]) -> tuple[Usage, int]:
    """What counts against the project's quotas on ``day``, and how many of the
    ``reserved`` run ids the read model already has, in ONE statement: the projector
    writes a run's row and its counts in one transaction, so a run is either in both or
    in neither, and the caller counts each reserved run exactly once."""
    ids = reserved[:MAX_RESERVED_LOOKUP]
    waiting = (select(project_waiting.c.running)
               .where(project_waiting.c.project_id == project_id).scalar_subquery())
    today = (select(project_days.c.running)
             .where((project_days.c.project_id == project_id) & (project_days.c.day == day))
             .scalar_subquery())
    seen = (select(func.count()).select_from(runs).where(runs.c.id.in_(ids))
            .scalar_subquery())
    async with engine.connect() as conn:
        row = (await conn.execute(select(waiting, today, seen))).one()
    return Usage(queued_runs=int(row[0] or 0), runs_today=int(row[1] or 0)), int(row[2] or 0)


async def project_quotas_and_usage(engine: AsyncEngine, project_id: str,
                                   day: str) -> tuple[Quotas | None, Usage]:
    """The project's quotas (None: never set) and what counts against them on ``day``
    (UTC, YYYY-MM-DD): three primary-key reads on one connection."""
    async with engine.connect() as conn:
        quota_row = (await conn.execute(
            select(project_quotas.c.max_queued_runs, project_quotas.c.max_runs_per_day)
            .where(project_quotas.c.project_id == project_id))).first()
        waiting = (await conn.execute(select(project_waiting.c.running).where(
            project_waiting.c.project_id == project_id))).scalar()
        today = (await conn.execute(select(project_days.c.running).where(
            (project_days.c.project_id == project_id) & (project_days.c.day == day)))).scalar()
    quotas = None if quota_row is None else Quotas(max_queued_runs=quota_row[0],
                                                   max_runs_per_day=quota_row[1])
    return quotas, Usage(queued_runs=int(waiting or 0), runs_today=int(today or 0))
