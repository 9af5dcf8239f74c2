"""The live streams' pieces without Kafka: the SSE framing, resume ids, the terminal rule,
and the reads after a position on SQLite (every filter, project scoping, paging that
misses and repeats nothing, each read served by an index)."""

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from events import Envelope, encode_event
from events.types import (
    EVENT_TYPES,
    AttemptFailure,
    Event,
    JobCreated,
    JobDisabled,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunHeartbeatRecorded,
    RunTriggered,
)
from projections.projector import apply_batch
from projections.streams import (
    TERMINAL_EVENTS,
    EventFilter,
    ends_run,
    events_after,
    events_queries,
    last_position,
    last_position_query,
    position_at,
    position_at_query,
    run_events_after,
    run_events_query,
)
from projections.tables import run_events
from schemas.streams import StreamEvent
from services.api.errors import ApiError
from services.api.sse import (
    event_message,
    keep_alive_message,
    opening_message,
    parse_event_id,
    resume_point,
)
from services.api.stream_hub import StreamHub
from services.api.visibility import ProjectionWatcher
from tests.unit.domain_support import at, spec
from tests.unit.test_projections import engine_at

TOPIC = "t.events"


class Log:
    """Events of several jobs and projects, each job with its own seqs."""

    def __init__(self) -> None:
        self.records: list[tuple[int, int, bytes]] = []
        self.seqs: dict[str, int] = {}

    def emit(self, job_id: str, run_id: str | None, event: Event, when: datetime,
             project: str = "p") -> None:
        seq = self.seqs[job_id] = self.seqs.get(job_id, 0) + 1
        env = Envelope(event_id=f"{job_id}.{seq}", type=event.TYPE, version=event.VERSION,
                       project_id=project, job_id=job_id, seq=seq, occurred_at=when,
                       command_id=f"c{len(self.records)}", run_id=run_id)
        self.records.append((0, len(self.records), encode_event(env, event)))

    def run(self, job_id: str, run_id: str, n: int, project: str = "p",
            end: Event | None = None) -> None:
        self.emit(job_id, run_id, RunTriggered(payload={"n": n}), at(n), project)
        self.emit(job_id, run_id, RunDispatched(attempt=1, endpoint_url="http://x"),
                  at(n + 1), project)
        for beat in range(n % 3):
            self.emit(job_id, run_id, RunHeartbeatRecorded(attempt=1), at(n + 2 + beat),
                      project)
        if end is not None:
            self.emit(job_id, run_id, end, at(n + 5), project)


def scripted() -> Log:
    log = Log()
    for job_id, project in (("j1", "p"), ("j2", "p"), ("jq", "q")):
        log.emit(job_id, None, JobCreated(spec=spec(slug=job_id)), at(0), project)
    failure = AttemptFailure(kind="http_status", message="500", retryable=False)
    for n in range(30):  # interleaved, as partitions would be
        job_id = "j1" if n % 2 else "j2"
        end: Event | None = (RunCompleted(attempt=1, result={"n": n}) if n % 3 == 0 else
                             RunFailed(attempt=1, failure=failure) if n % 3 == 1 else None)
        log.run(job_id, f"r{n:02d}", n, end=end)
        if n % 7 == 0:
            log.run("jq", f"q{n:02d}", n, project="q", end=RunCompleted(attempt=1))
    log.emit("j1", None, JobDisabled(by="admin"), at(99))
    return log


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    engine = await engine_at(tmp_path / "streams.db")
    records = scripted().records
    for i in range(0, len(records), 23):  # batches cut anywhere
        async with engine.begin() as conn:
            await apply_batch(conn, TOPIC, records[i:i + 23])
    yield engine
    await engine.dispose()


async def stored(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(run_events).order_by(run_events.c.position))
        return [dict(row._mapping) for row in rows]


# --- framing and ids ---------------------------------------------------------------

def test_an_event_is_one_message_with_its_id_type_and_json_data() -> None:
    event = StreamEvent(position=7, job_id="j1", seq=3, type="run.completed", version=1,
                        event_id="e", command_id="c", run_id="r1", occurred_at=at(0),
                        data={"text": "two\nlines", "n": 1})
    framed = event_message(3, event).encode()
    lines = framed.decode().split("\r\n")
    assert lines[:2] == ["id: 3", "event: run.completed"]
    assert lines[2].startswith("data: ") and lines[3:] == ["", ""]  # one data line, end
    assert msgspec.json.decode(lines[2][6:]) == msgspec.to_builtins(event)


def test_the_opening_and_the_keep_alive_are_comments() -> None:
    assert opening_message().encode() == b": stream open\r\nretry: 3000\r\n\r\n"
    assert keep_alive_message().encode() == b": keep-alive\r\n\r\n"


@pytest.mark.parametrize("text", ["abc", "-1", "1.0", "1e3", "0x10", "\u0663", "9" * 20,
                                  str(2**63), "", " "])
def test_a_malformed_id_is_refused_with_its_field(text: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_event_id(text) if text.strip() else parse_event_id(text, "after")
    assert refused.value.status == 422
    assert refused.value.details[0].field in ("Last-Event-ID", "after")


def test_the_header_wins_over_the_query() -> None:
    assert parse_event_id(" 42 ") == 42
    assert parse_event_id(str(2**63 - 1)) == 2**63 - 1
    assert resume_point("17", 3) == 17  # an EventSource reconnecting to the first URL
    assert resume_point(None, 3) == 3
    assert resume_point("", None) is None


def test_the_terminal_rule_follows_the_run_state_machine() -> None:
    assert TERMINAL_EVENTS == {"run.completed", "run.failed", "run.crashed", "run.canceled",
                               "run.expired"}
    assert TERMINAL_EVENTS <= EVENT_TYPES.keys()
    assert not any(ends_run(t) for t in ("run.retry_scheduled", "run.cancel_requested",
                                         "run.webhook_attempted", "run.dispatched"))


# --- positions and reads -----------------------------------------------------------

async def test_positions_number_every_applied_event_once_in_apply_order(
        engine: AsyncEngine) -> None:
    rows = await stored(engine)
    assert [r["position"] for r in rows] == list(range(1, len(rows) + 1))
    # Apply order: each job's events by seq; the log's own order across jobs.
    order = [(r["job_id"], r["seq"]) for r in rows]
    for job_id in {j for j, _ in order}:
        seqs = [s for j, s in order if j == job_id]
        assert seqs == sorted(seqs)
    # A repeat of the whole log adds nothing and numbers nothing.
    async with engine.begin() as conn:
        assert (await apply_batch(conn, TOPIC, scripted().records)).events == 0
    assert len(await stored(engine)) == len(rows)
    assert await last_position(engine, "p") == max(r["position"] for r in rows
                                                   if r["project_id"] == "p")
    assert await last_position(engine, "nobody") == 0


FILTERS = [EventFilter(), EventFilter(job_id="j1"), EventFilter(run_id="r03"),
           EventFilter(types=frozenset({"run.completed"})),
           EventFilter(types=frozenset({"run.completed", "run.failed", "job.created"})),
           EventFilter(job_id="j2", types=frozenset({"run.heartbeat_recorded"})),
           EventFilter(run_id="r04", types=frozenset({"run.dispatched"})),
           EventFilter(job_id="jq"),  # another project's job: nothing
           EventFilter(run_id="q07")]


@pytest.mark.parametrize("case", range(len(FILTERS)))
@pytest.mark.parametrize("limit", [1, 3, 500])
async def test_paging_after_a_position_gives_exactly_the_matching_events(
        engine: AsyncEngine, case: int, limit: int) -> None:
    filters = FILTERS[case]
    rows = await stored(engine)
    wanted = [r["position"] for r in rows if r["project_id"] == "p"
              and (filters.job_id is None or r["job_id"] == filters.job_id)
              and (filters.run_id is None or r["run_id"] == filters.run_id)
              and (not filters.types or r["type"] in filters.types)]
    for start in (0, *wanted[:3], len(rows) // 2):
        got, after = [], start
        for _ in range(len(rows) + 1):
            page = await events_after(engine, "p", after, filters, limit)
            assert page.read_to >= after
            got += [e.position for e in page.events]
            if not page.full:
                break
            after = page.read_to
        assert got == [p for p in wanted if p > start], (filters, limit, start)
        assert all(e.job_id != "jq" for e in page.events)


async def test_a_runs_events_page_in_seq_order_within_its_project(
        engine: AsyncEngine) -> None:
    rows = [r for r in await stored(engine) if r["run_id"] == "r09"]
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(seqs)  # by position, which is by seq within a run
    got, after = [], 0
    while page := await run_events_after(engine, "p", "r09", after, 2):
        got += [e.seq for e in page]
        after = page[-1].position
    assert got == seqs and page == []
    assert [e.type for e in await run_events_after(engine, "p", "r09", 0, 50)][-1] == (
        "run.completed")
    assert await run_events_after(engine, "q", "r09", 0, 50) == []  # another project
    # A seq the stream sent as an id names the place to read after; a seq between the
    # run's events (another run's, of the same job) names the run's next event too.
    job_id = rows[0]["job_id"]
    for i, row in enumerate(rows):
        place = await position_at(engine, "p", job_id, row["seq"])
        assert place == row["position"]
        assert [e.seq for e in await run_events_after(engine, "p", "r09", place, 50)] == (
            seqs[i + 1:])
        between = await position_at(engine, "p", job_id, row["seq"] - 1)
        assert [e.seq for e in await run_events_after(engine, "p", "r09", between, 50)] == (
            seqs[i:])
    assert await position_at(engine, "p", job_id, 0) == 0
    assert await position_at(engine, "q", job_id, 10**6) == 0  # another project's job


async def test_every_read_is_an_index_search(engine: AsyncEngine) -> None:
    queries = [run_events_query("p", "r01", 2, 500), position_at_query("p", "j1", 5),
               last_position_query("p")]
    for filters in FILTERS:
        queries += events_queries("p", 10, filters, 500)
    for query in queries:
        compiled = query.compile(dialect=engine.dialect,
                                 compile_kwargs={"render_postcompile": True})
        values = tuple(compiled.params[name] for name in compiled.positiontup or [])
        async with engine.connect() as conn:
            plan = [row[-1] for row in await conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + str(compiled), values)]
        assert any("USING INDEX" in step or "USING COVERING INDEX" in step
                   for step in plan), (str(query), plan)
        # No scan, and no sort: the index gives the rows in the order they are sent.
        assert not any(step.startswith("SCAN") or "TEMP B-TREE" in step
                       for step in plan), (str(query), plan)


# --- the hub -------------------------------------------------------------------------

async def test_every_notice_the_watcher_hears_reaches_the_hub() -> None:
    dummy: Any = None  # neither the engine nor the consumer is used without start()
    watcher = ProjectionWatcher(dummy, dummy, "unused", "t.projected")
    hub = StreamHub(max_streams=5)
    watcher.listeners.append(hub.applied)
    on_job = hub.open("j1")
    watcher.applied({"j2": 1})
    assert not on_job.wake.is_set()
    watcher.applied({"j1": 3})
    assert on_job.wake.is_set()


async def test_the_hub_caps_streams_wakes_by_job_and_stops_them_all() -> None:
    hub = StreamHub(max_streams=2)
    on_job, on_any = hub.open("j1"), hub.open(None)
    with pytest.raises(ApiError) as refused:
        hub.open("j2")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"]
    hub.applied({"j2": 4})
    assert not on_job.wake.is_set() and on_any.wake.is_set()
    hub.applied({"j1": 9})
    assert on_job.wake.is_set()
    on_job.close()
    on_job.close()  # idempotent
    again = hub.open("j3")
    hub.stop_all_soon()  # as from a signal handler: on the loop, a moment later
    await asyncio.sleep(0)
    assert again.stopped and on_any.stopped and again.wake.is_set()
    with pytest.raises(ApiError) as stopping:
        hub.open(None)
    assert stopping.value.status == 503

