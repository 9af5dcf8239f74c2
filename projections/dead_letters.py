"""The dead-letter list's queries: a project's runs with no attempt left, newest first."""

from datetime import datetime

import msgspec
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.rows import fields_of
from projections.tables import dead_letters, runs
from projections.views import RunView


class DeadLetterView(msgspec.Struct, frozen=True, kw_only=True):
    run: RunView
    finished_at: datetime
    replayed_by: str | None



async def list_dead_letters(engine: AsyncEngine, project_id: str, *, job_id: str | None,
                            include_replayed: bool, after: tuple[datetime, str] | None,
                            limit: int) -> list[DeadLetterView]:
    """One keyset page, by (finished_at, run id) descending; served by the index on
    (project_id, finished_at, run_id)."""
    query = (select(runs, dead_letters.c.finished_at.label("dl_finished_at"),
                    dead_letters.c.replayed_by.label("dl_replayed_by"))
             .select_from(dead_letters.join(runs, runs.c.id == dead_letters.c.run_id))
             .where(dead_letters.c.project_id == project_id))
    if job_id is not None:
        query = query.where(dead_letters.c.job_id == job_id)
    if not include_replayed:
        query = query.where(dead_letters.c.replayed_by.is_(None))
    if after is not None:
        at, run_id = after
        query = query.where(or_(dead_letters.c.finished_at < at,
                                and_(dead_letters.c.finished_at == at,
                                     dead_letters.c.run_id < run_id)))
    query = query.order_by(dead_letters.c.finished_at.desc(),
                           dead_letters.c.run_id.desc()).limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    found = []
    for row in rows:
        fields = fields_of(row)
        finished, replayed = fields.pop("dl_finished_at"), fields.pop("dl_replayed_by")
        found.append(DeadLetterView(run=msgspec.convert(fields, RunView, strict=False),
                                    finished_at=finished, replayed_by=replayed))
    return found


async def dead_letter_of(engine: AsyncEngine, project_id: str,
                         run_id: str) -> tuple[bool, str | None]:
    """Whether the run is on the project's dead-letter list, and what replayed it."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(dead_letters.c.replayed_by).where(
            (dead_letters.c.run_id == run_id)
            & (dead_letters.c.project_id == project_id)))).first()
    return (False, None) if row is None else (True, row[0])
