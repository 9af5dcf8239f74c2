"""Tracked operations' queries: one operation with its parts summed (two indexed reads),
and the ids of a project's live jobs (what a project-wide operation covers)."""

from datetime import datetime

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.rows import aware, fields_of
from projections.tables import jobs, operation_parts, operations


class OperationView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    kind: str
    job_ids: list[str]
    jobs_total: int
    job_version: int | None
    created_by: str | None
    created_at: datetime
    jobs_done: int
    canceled: int
    finished_at: datetime | None



async def get_operation(engine: AsyncEngine, project_id: str,
                        operation_id: str) -> OperationView | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(operations).where(
            (operations.c.id == operation_id)
            & (operations.c.project_id == project_id)))).first()
        if row is None:
            return None
        done, canceled, last = (await conn.execute(
            select(func.count(), func.coalesce(func.sum(operation_parts.c.canceled), 0),
                   func.max(operation_parts.c.finished_at))
            .where(operation_parts.c.operation_id == operation_id))).one()
    fields = fields_of(row)
    finished = aware(last) if done >= fields["jobs_total"] else None
    if fields["jobs_total"] == 0:
        finished = fields["created_at"]
    return msgspec.convert({**fields, "jobs_done": int(done), "canceled": int(canceled),
                            "finished_at": finished}, OperationView)


async def live_job_ids(engine: AsyncEngine, project_id: str, limit: int) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(jobs.c.id)
                                  .where((jobs.c.project_id == project_id)
                                         & jobs.c.deleted_at.is_(None))
                                  .order_by(jobs.c.id).limit(limit))
        return [str(job_id) for (job_id,) in rows]
