"""The dependency graph's queries: a job's upstream jobs, and whether an edge closes a
cycle (a walk downstream over the indexed edges, bounded by the project's jobs)."""

from datetime import datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.rows import fields_of
from projections.tables import job_dependencies


class DependencyView(msgspec.Struct, frozen=True, kw_only=True):
    upstream_job_id: str
    downstream_job_id: str
    condition: str
    created_at: datetime



async def upstreams_of(engine: AsyncEngine, project_id: str,
                       job_id: str) -> list[DependencyView]:
    """The jobs ``job_id`` runs after, oldest edge first."""
    query = (select(job_dependencies)
             .where((job_dependencies.c.downstream_job_id == job_id)
                    & (job_dependencies.c.project_id == project_id))
             .order_by(job_dependencies.c.created_at, job_dependencies.c.upstream_job_id))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [msgspec.convert(fields_of(row),
                            DependencyView) for row in rows]


async def path_between(engine: AsyncEngine, project_id: str, start: str,
                       goal: str) -> list[str] | None:
    """The jobs from ``start`` down to ``goal`` along the edges (each runs after the one
    before it), or None: what a new edge goal -> start would close into a cycle."""
    came_from: dict[str, str | None] = {start: None}
    frontier = [start]
    async with engine.connect() as conn:
        while frontier:
            rows = await conn.execute(
                select(job_dependencies.c.upstream_job_id, job_dependencies.c.downstream_job_id)
                .where(job_dependencies.c.upstream_job_id.in_(frontier[:500])
                       & (job_dependencies.c.project_id == project_id)))
            frontier = frontier[500:]
            for upstream, downstream in rows:
                if downstream in came_from:
                    continue
                came_from[downstream] = upstream
                if downstream == goal:
                    path = [downstream]
                    while (step := came_from[path[-1]]) is not None:
                        path.append(step)
                    return path[::-1]
                frontier.append(downstream)
    return None
