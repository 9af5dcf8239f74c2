"""Live streams as server-sent events: GET /v1/runs/{id}/stream, GET /v1/events/stream.

A stream sends the events after the client's id (the ``Last-Event-ID`` header, or the
``after`` query parameter), a page at a time, then waits for the projection to apply
more and sends those. The run stream's id is the job's seq and it ends after the run's
terminal event; the events stream's id is the projection's ``position`` and it goes on
until the client leaves. Litestar cancels the sending task when the client disconnects;
the generator's ``finally`` and the response's background task then free the stream's
slot. At shutdown the StreamHub ends every stream.
"""

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, get
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, HeaderParameter, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from events.types import EVENT_TYPES
from projections.queries import find_job, get_run
from projections.streams import (
    EventFilter,
    ends_run,
    events_after,
    last_position,
    position_at,
    run_events_after,
)
from services.api.auth import caller_of
from services.api.context import ApiContext
from services.api.errors import invalid
from services.api.runs import run_view
from services.api.sse import (
    MAX_ID,
    event_message,
    keep_alive_message,
    opening_message,
    resume_point,
)
from services.api.stream_hub import StreamHub, Subscription
from services.domain import TERMINAL

PAGE = 500  # events read per query
POLL_SECS = 2.0  # the safety net for a lost notice
MIN_READ_GAP_SECS = 0.2  # at most five reads a second per stream, however busy the log
MAX_TYPES = 10

After = Annotated[int | None, Parameter(
    ge=0, le=MAX_ID, schema_extra={"minimum": 0},  # Litestar leaves a ge of 0 out
    description="resume after this event id (the Last-Event-ID header, when sent, wins)")]
LastEventId = Annotated[str | None, HeaderParameter(
    name="Last-Event-ID", max_length=64,
    description="the id of the last event the client received: the stream resumes after "
                "it (what an EventSource sends when it reconnects)")]


@dataclass
class Step:
    """What one read gave: messages to send, whether the stream is over, whether a whole
    page was read (so more may be there at once)."""

    messages: list[ServerSentEventMessage]
    done: bool = False
    more: bool = False


Source = Callable[[], Awaitable[Step]]


def run_source(engine: AsyncEngine, project_id: str, run_id: str, after: int,
               finished: bool) -> Source:
    """The run's events after position ``after``, sent with their seq as the id; over after
    the terminal event, or, for a run that had ended when the stream opened, once
    everything after ``after`` is sent."""
    cursor = after

    async def step() -> Step:
        nonlocal cursor
        page = await run_events_after(engine, project_id, run_id, cursor, PAGE)
        messages = []
        for event in page:
            messages.append(event_message(event.seq, event))
            cursor = event.position
            if ends_run(event.type):
                return Step(messages, done=True)
        more = len(page) >= PAGE
        return Step(messages, done=finished and not more, more=more)

    return step


def events_source(engine: AsyncEngine, project_id: str, after: int,
                  filters: EventFilter) -> Source:
    cursor = after

    async def step() -> Step:
        nonlocal cursor
        page = await events_after(engine, project_id, cursor, filters, PAGE)
        cursor = page.read_to
        return Step([event_message(e.position, e) for e in page.events], more=page.full)

    return step


async def pump(source: Source, subscription: Subscription,
               heartbeat_secs: float) -> AsyncGenerator[ServerSentEventMessage, None]:
    """Send what ``source`` reads, waiting for wake-ups between reads, with keep-alives."""
    try:
        yield opening_message()
        last_sent = time.monotonic()
        while not subscription.stopped:
            subscription.wake.clear()  # before the read: a wake during it is kept
            step = await source()
            for message in step.messages:
                yield message
            if step.messages:
                last_sent = time.monotonic()
            if step.done:
                return
            if step.more:
                continue  # a backlog: read on at once
            read_at = time.monotonic()
            idle = last_sent + heartbeat_secs - read_at
            try:
                await asyncio.wait_for(subscription.wake.wait(), max(0.0, min(POLL_SECS, idle)))
            except TimeoutError:
                pass
            if time.monotonic() - last_sent >= heartbeat_secs:
                yield keep_alive_message()
                last_sent = time.monotonic()
            # However often the projector commits, a stream reads a few times a second.
            if (gap := read_at + MIN_READ_GAP_SECS - time.monotonic()) > 0:
                await asyncio.sleep(gap)
    finally:
        subscription.close()


def _respond(stream: AsyncGenerator[ServerSentEventMessage, None],
             subscription: Subscription) -> ServerSentEvent:
    async def closed() -> None:
        # After the response, however it ended (a client that left cancels the sending,
        # which may leave the generator suspended at a yield): free the slot, close it.
        subscription.close()
        await stream.aclose()

    return ServerSentEvent(stream, background=BackgroundTask(closed))


def _hub(request: Request[Any, Any, Any]) -> StreamHub:
    hub: StreamHub = request.app.state.streams
    return hub


@get("/v1/runs/{run_id:str}/stream", summary="A run's events, live (server-sent events)",
     description="The run's events after the Last-Event-ID (its job's seq), then each new "
                 "one as the read models apply it; ends after the run's terminal event "
                 "(at once for an ended run with nothing left to send). Each message: "
                 "id (seq), event (the type), data (the event as JSON).")
async def run_stream(request: Request[Any, Any, Any], run_id: FromPath[str],
                     after: After = None,
                     last_event_id: LastEventId = None) -> ServerSentEvent:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    start = resume_point(last_event_id, after)
    run = await run_view(ctx, key, run_id)
    # The id is the job's seq; the run's events are read by position (see projections.streams).
    read_after = 0 if not start else await position_at(ctx.engine, key.project_id,
                                                       run.job_id, start)
    subscription = _hub(request).open(run.job_id)
    source = run_source(ctx.engine, key.project_id, run_id, read_after,
                        finished=run.status in TERMINAL)
    stream = pump(source, subscription, ctx.settings.stream_heartbeat_secs)
    return _respond(stream, subscription)


def _types(texts: list[str] | None) -> frozenset[str]:
    found = frozenset(t for text in texts or [] for t in text.split(",") if t)
    if len(found) > MAX_TYPES:  # each type is a read of its own (projections.streams)
        raise invalid("type", f"at most {MAX_TYPES} event types")
    if unknown := sorted(found - EVENT_TYPES.keys()):
        raise invalid("type", f"{unknown[0][:64]!r} is not an event type (such as "
                              "run.completed; see the AsyncAPI document)")
    return found


@get("/v1/events/stream", summary="The project's events, live (server-sent events)",
     description="The events of the key's project (its jobs' and runs' events, in the "
                 "order the read models applied them) after the Last-Event-ID (a "
                 "position), or from now on when none is given (after=0: from the "
                 "start); never ends on its own. Filters: job (id or slug), run, type "
                 "(repeat or separate with commas). Each message: id (position), event "
                 "(the type), data (the event as JSON).")
async def events_stream(
    request: Request[Any, Any, Any],
    job: Annotated[str | None, Parameter(
        description="the job's id or slug", min_length=1, max_length=64)] = None,
    run: Annotated[str | None, Parameter(
        description="a run's id", min_length=1, max_length=64)] = None,
    type: Annotated[list[str] | None, Parameter(  # the query's name, as clients write it
        description="event types, such as run.completed", max_items=MAX_TYPES)] = None,
    after: After = None,
    last_event_id: LastEventId = None,
) -> ServerSentEvent:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    start = resume_point(last_event_id, after)
    types = _types(type)
    job_id = None
    if job is not None:
        # A slug names the live job that has it; an id also finds a deleted job's events.
        found = await find_job(ctx.engine, key.project_id, job)
        job_id = job if found is None else found.id
    filters = EventFilter(job_id=job_id, run_id=run, types=types)
    # What wakes the stream: its job's notices, or every notice.
    wake_on = job_id
    if wake_on is None and run is not None:
        view = await get_run(ctx.engine, key.project_id, run)
        wake_on = None if view is None else view.job_id
    if start is None:
        start = await last_position(ctx.engine, key.project_id)
    subscription = _hub(request).open(wake_on)
    source = events_source(ctx.engine, key.project_id, start, filters)
    stream = pump(source, subscription, ctx.settings.stream_heartbeat_secs)
    return _respond(stream, subscription)


STREAM_ROUTES = [run_stream, events_stream]
