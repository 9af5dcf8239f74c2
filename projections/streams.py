"""What the live streams read: a page of applied events after a position.

Every read is one index range of ``run_events`` that starts right after where the reader
is, and takes at most a page, so its cost does not grow with the events before it:

- a project's events by ``position``: (project_id, position); of one job:
  (project_id, job_id, position); of one run: (project_id, run_id, position); of some
  types: one (project_id, type, position) range per type, merged;
- a run's stream reads its run's range too: within a run, position and the job's seq
  (the run stream's id) rise together, so a seq is turned into a position once, by the
  primary key (job_id, seq), when the stream opens.

When a filter is not the one the index serves (types within a job or a run), the page is
filtered after the read, and the reader moves on to the last position *read*: a job with
many events of other types costs pages, never one read that walks the job's history.
"""

import heapq
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from events.types import RunCanceled, RunCompleted, RunCrashed, RunExpired, RunFailed
from projections.rows import aware
from projections.tables import run_events
from schemas.streams import StreamEvent

# The events after which a run never changes state again (the run state machine's
# terminal states: completed, failed and timed_out (run.failed), crashed, canceled,
# expired). A run's stream ends after one of them.
TERMINAL_EVENTS = frozenset({RunCompleted.TYPE, RunFailed.TYPE, RunCrashed.TYPE,
                             RunCanceled.TYPE, RunExpired.TYPE})

_COLUMNS = (run_events.c.position, run_events.c.job_id, run_events.c.seq,
            run_events.c.type, run_events.c.version, run_events.c.event_id,
            run_events.c.command_id, run_events.c.run_id, run_events.c.occurred_at,
            run_events.c.data)


def ends_run(event_type: str) -> bool:
    """Whether a run's stream ends after an event of this type."""
    return event_type in TERMINAL_EVENTS


@dataclass(frozen=True)
class EventFilter:
    """The events stream's filters; empty ones do not filter. ``job_id`` is an id (the
    route resolves a slug)."""

    job_id: str | None = None
    run_id: str | None = None
    types: frozenset[str] = frozenset()

    def keeps(self, event: StreamEvent) -> bool:
        return ((self.job_id is None or event.job_id == self.job_id)
                and (self.run_id is None or event.run_id == self.run_id)
                and (not self.types or event.type in self.types))


@dataclass(frozen=True)
class EventPage:
    """The events of a page that pass the filter; ``read_to``: the position read up to
    (the next page starts after it); ``full``: a whole page was read, so more may wait."""

    events: list[StreamEvent]
    read_to: int
    full: bool


def _event(row: Row[Any]) -> StreamEvent:
    fields = dict(row._mapping)
    fields["occurred_at"] = aware(fields["occurred_at"])
    return StreamEvent(**fields)


def run_events_query(project_id: str, run_id: str, after: int, limit: int) -> Select[Any]:
    """The run's events after position ``after``."""
    return (select(*_COLUMNS)
            .where((run_events.c.project_id == project_id) & (run_events.c.run_id == run_id)
                   & (run_events.c.position > after))
            .order_by(run_events.c.position).limit(limit))


def position_at_query(project_id: str, job_id: str, seq: int) -> Select[Any]:
    return (select(run_events.c.position)
            .where((run_events.c.job_id == job_id) & (run_events.c.seq <= seq)
                   & (run_events.c.project_id == project_id))
            .order_by(run_events.c.seq.desc()).limit(1))


def events_queries(project_id: str, after: int, filters: EventFilter,
                   limit: int) -> list[Select[Any]]:
    """The reads of one page: one, or one per type when only types filter."""
    base = select(*_COLUMNS).where((run_events.c.project_id == project_id)
                                   & (run_events.c.position > after))
    if filters.run_id is not None:
        narrowed = [base.where(run_events.c.run_id == filters.run_id)]
    elif filters.job_id is not None:
        narrowed = [base.where(run_events.c.job_id == filters.job_id)]
    elif filters.types:
        narrowed = [base.where(run_events.c.type == t) for t in sorted(filters.types)]
    else:
        narrowed = [base]
    return [q.order_by(run_events.c.position).limit(limit) for q in narrowed]


async def position_at(engine: AsyncEngine, project_id: str, job_id: str, seq: int) -> int:
    """The position of the job's last event at or before ``seq`` (0: none): a run stream's
    id (a seq) as the place in the run's position range to read after."""
    async with engine.connect() as conn:
        found = await conn.scalar(position_at_query(project_id, job_id, seq))
    return int(found or 0)


async def run_events_after(engine: AsyncEngine, project_id: str, run_id: str,
                           after: int, limit: int) -> list[StreamEvent]:
    """The run's events after position ``after``, in order (of position and of seq alike),
    at most ``limit``."""
    async with engine.connect() as conn:
        rows = await conn.execute(run_events_query(project_id, run_id, after, limit))
        return [_event(row) for row in rows]


def merge_page(reads: list[list[StreamEvent]], after: int, filters: EventFilter,
               limit: int) -> EventPage:
    """One page from the reads of ``events_queries`` (each ordered, at most ``limit``).

    A read that came back full covers positions only up to its last event; past the
    lowest such end, another type's later events could be missing, so the page stops
    there and the next one goes on from it."""
    ends = [read[-1].position for read in reads if len(read) >= limit]
    bound = min(ends) if ends else None
    merged = [e for e in heapq.merge(*reads, key=lambda e: e.position)
              if bound is None or e.position <= bound]
    read_to = bound if bound is not None else max((r[-1].position for r in reads if r),
                                                  default=after)
    return EventPage([e for e in merged if filters.keeps(e)], read_to, bound is not None)


async def events_after(engine: AsyncEngine, project_id: str, after: int,
                       filters: EventFilter, limit: int) -> EventPage:
    """The project's events after position ``after`` that pass ``filters``."""
    async with engine.connect() as conn:
        reads = [[_event(row) for row in await conn.execute(query)]
                 for query in events_queries(project_id, after, filters, limit)]
    return merge_page(reads, after, filters, limit)


def last_position_query(project_id: str) -> Select[Any]:
    return (select(run_events.c.position).where(run_events.c.project_id == project_id)
            .order_by(run_events.c.position.desc()).limit(1))


async def last_position(engine: AsyncEngine, project_id: str) -> int:
    """The project's latest position (0 before its first event): where a stream opened
    without an id starts, so it shows what happens from now on."""
    async with engine.connect() as conn:
        found = await conn.scalar(last_position_query(project_id))
    return int(found or 0)
