"""The stream routes over real HTTP (uvicorn on loopback), on SQLite, without Kafka: what a
client reads, resumption, the end after a terminal event, the error answers, the cap, the
keep-alives, and that a client that leaves frees its slot. The projection notices are
stood in for by calling the hub as the ProjectionWatcher does."""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from events.types import EVENT_TYPES, RunCompleted, RunHeartbeatRecorded, RunTriggered
from projections.projector import apply_batch
from services.api.auth import KeyRing, auth_middleware
from services.api.errors import EXCEPTION_HANDLERS
from services.api.stream_hub import StreamHub
from services.api.streams import STREAM_ROUTES
from services.config import ApiKey, Settings, hash_key
from tests.integration.sse import Message, drain, messages
from tests.unit.domain_support import at
from tests.unit.test_projections import engine_at
from tests.unit.test_streams import TOPIC, Log, scripted

P_KEY, Q_KEY = "key-of-p", "key-of-q"


@dataclass
class Served:
    url: str
    engine: AsyncEngine
    log: Log
    hub: StreamHub
    applied: int = 0  # records of the log applied so far
    _tasks: list[Any] = field(default_factory=list)

    def client(self, key: str | None = P_KEY) -> httpx.AsyncClient:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    async def apply_new(self) -> None:
        """Apply what the log gained, and announce it as the projector's notice would."""
        records = self.log.records[self.applied:]
        self.applied = len(self.log.records)
        async with self.engine.begin() as conn:
            done = await apply_batch(conn, TOPIC, records)
        self.hub.applied(done.positions)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    engine = await engine_at(tmp_path / "streams.db")
    log = scripted()
    async with engine.begin() as conn:
        await apply_batch(conn, TOPIC, log.records)
    settings = Settings(api_keys=(ApiKey("p", "viewer", hash_key(P_KEY)),
                                  ApiKey("q", "admin", hash_key(Q_KEY))),
                        max_streams=3, stream_heartbeat_secs=0.5)
    app = Litestar(route_handlers=STREAM_ROUTES, middleware=[auth_middleware()],
                   exception_handlers=EXCEPTION_HANDLERS)
    app.state.keyring = KeyRing(settings)
    app.state.ctx = SimpleNamespace(engine=engine, settings=settings)
    app.state.streams = hub = StreamHub(settings.max_streams)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Served(f"http://127.0.0.1:{port}", engine, log, hub, len(log.records))
    hub.stop_all()
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    await engine.dispose()


async def read_all(client: httpx.AsyncClient, path: str, timeout: float = 10,
                   **kwargs: Any) -> list[Message]:
    """Every message until the server ends the stream (fails if it does not)."""
    async def read() -> list[Message]:
        async with client.stream("GET", path, **kwargs) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            return [m async for m in messages(response) if m.id is not None]
    return await asyncio.wait_for(read(), timeout)


def seqs_of(log: Log, run_id: str) -> list[int]:
    """The seqs of the run's events in the log (what the projection applied)."""
    found = []
    for _, _, raw in log.records:
        envelope = msgspec.json.decode(raw)
        if envelope["run_id"] == run_id:
            found.append(envelope["seq"])
    return found


async def test_an_ended_runs_stream_replays_resumes_and_ends(served: Served) -> None:
    expected = seqs_of(served.log, "r03")  # completed
    async with served.client() as client:
        sent = await read_all(client, "/v1/runs/r03/stream")
        assert [int(m.id or 0) for m in sent] == expected
        assert [m.data["seq"] for m in sent] == expected
        assert sent[-1].event == "run.completed" == sent[-1].data["type"]
        assert {m.data["run_id"] for m in sent} == {"r03"}
        resumed = await read_all(client, "/v1/runs/r03/stream",
                                 headers={"Last-Event-ID": sent[0].id or ""})
        assert [m.data for m in resumed] == [m.data for m in sent[1:]]
        by_query = await read_all(client, "/v1/runs/r03/stream",
                                  params={"after": sent[1].id})
        assert [m.data for m in by_query] == [m.data for m in sent[2:]]
        # Past its terminal event, nothing is left: it ends at once.
        assert await read_all(client, "/v1/runs/r03/stream",
                              headers={"Last-Event-ID": sent[-1].id or ""}) == []


async def test_a_live_runs_stream_sends_what_is_applied_and_ends_after_the_end(
        served: Served) -> None:
    async with served.client() as client, client.stream(
            "GET", "/v1/runs/r02/stream") as response:
        assert response.status_code == 200
        reading = messages(response)
        first = await anext(reading)
        assert first.comment == "stream open"
        before = [await anext(reading) for _ in seqs_of(served.log, "r02")]
        served.log.emit("j2", "r02", RunHeartbeatRecorded(attempt=1), at(50))
        served.log.emit("j2", "r77", RunTriggered(payload={}), at(50))  # another run
        served.log.emit("j2", "r02", RunCompleted(attempt=1, result={"ok": True}), at(51))
        await served.apply_new()
        rest = [m for m in await asyncio.wait_for(drain(reading), 10)  # ends by itself
                if m.id is not None]
    events = [m for m in before if m.id is not None] + rest
    assert [int(m.id or 0) for m in events] == seqs_of(served.log, "r02")
    assert [m.event for m in rest] == ["run.heartbeat_recorded", "run.completed"]
    assert rest[-1].data["data"]["result"] == {"ok": True}


async def test_the_events_stream_starts_now_filters_and_resumes(served: Served) -> None:
    async with served.client() as client, client.stream(
            "GET", "/v1/events/stream",
            params={"job": "j1", "type": ["run.triggered", "run.completed"]}) as response:
        reading = messages(response)
        assert (await anext(reading)).comment == "stream open"  # and nothing before now
        served.log.emit("j1", "r80", RunTriggered(payload={}), at(60))
        served.log.emit("j2", "r81", RunTriggered(payload={}), at(60))  # another job
        served.log.emit("jq", "q82", RunTriggered(payload={}), at(60), project="q")
        served.log.emit("j1", "r80", RunHeartbeatRecorded(attempt=1), at(61))  # a type
        served.log.emit("j1", "r80", RunCompleted(attempt=1), at(62))
        await served.apply_new()
        got = [await anext(reading) for _ in range(2)]
    assert [(m.event, m.data["run_id"]) for m in got] == [("run.triggered", "r80"),
                                                          ("run.completed", "r80")]
    assert int(got[0].id or 0) < int(got[1].id or 0)
    assert [int(m.id or 0) for m in got] == [m.data["position"] for m in got]
    async with served.client() as client:
        # From the start (after=0), up to now: project p's events only, in position order.
        async with client.stream("GET", "/v1/events/stream", params={"after": 0}) as whole:
            reading = messages(whole)
            everything: list[Message] = []
            while len(everything) < 5 or everything[-1].data["run_id"] != "r80":
                message = await asyncio.wait_for(anext(reading), 5)
                if message.id is not None:
                    everything.append(message)
        positions = [int(m.id or 0) for m in everything]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert {m.data["job_id"] for m in everything} == {"j1", "j2"}
        assert "job.created" in {m.event for m in everything}  # the jobs' events too
        # Resumed after the first of the two: only the second.
        async with client.stream("GET", "/v1/events/stream", params={
                "job": "j1", "type": "run.triggered,run.completed"},
                headers={"Last-Event-ID": got[0].id or ""}) as again:
            reading = messages(again)
            assert (await anext(reading)).comment == "stream open"
            assert (await asyncio.wait_for(anext(reading), 5)).id == got[1].id


async def test_errors_are_answered_before_any_stream_in_the_one_shape(
        served: Served) -> None:
    async def error(client: httpx.AsyncClient, path: str, status: int,
                    **kwargs: Any) -> dict[str, Any]:
        response = await client.get(path, **kwargs)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        body: dict[str, Any] = response.json()["error"]
        return body

    async with served.client() as client:
        await error(client, "/v1/runs/nope/stream", 404)
        await error(client, "/v1/runs/q07/stream", 404)  # project q's run
        bad = await error(client, "/v1/runs/r03/stream", 422,
                          headers={"Last-Event-ID": "12abc"})
        assert bad["details"][0]["field"] == "Last-Event-ID"
        bad = await error(client, "/v1/events/stream", 422, params={"after": "-3"})
        assert bad["details"][0]["field"] == "after"
        bad = await error(client, "/v1/events/stream", 422, params={"type": "run.exploded"})
        assert bad["details"][0]["field"] == "type"
        eleven = ",".join(sorted(EVENT_TYPES)[:11])
        bad = await error(client, "/v1/events/stream", 422, params={"type": eleven})
        assert bad["details"][0]["field"] == "type"
    async with served.client(None) as anonymous:
        await error(anonymous, "/v1/events/stream", 401)
    async with served.client(Q_KEY) as other:
        # Project q sees its own run, and none of p's events.
        own = await read_all(other, "/v1/runs/q07/stream")
        assert own and {m.data["run_id"] for m in own} == {"q07"}
        async with other.stream("GET", "/v1/events/stream", params={"after": 0}) as response:
            reading = messages(response)
            seen = [await asyncio.wait_for(anext(reading), 5) for _ in range(4)]
        assert {m.data["job_id"] for m in seen if m.id is not None} == {"jq"}


async def wait_until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


async def test_the_cap_refuses_more_streams_and_a_client_leaving_frees_its_slot(
        served: Served) -> None:
    async with served.client() as client:
        held = [client.stream("GET", "/v1/events/stream") for _ in range(3)]
        responses = [await stream.__aenter__() for stream in held]
        assert all(r.status_code == 200 for r in responses)
        await wait_until(lambda: len(served.hub.subscriptions) == 3)
        refused = await client.get("/v1/runs/r02/stream")
        assert refused.status_code == 429 and refused.headers["Retry-After"]
        assert refused.json()["error"]["code"] == "too_many_requests"
        await held[0].__aexit__(None, None, None)  # the client goes away
        await wait_until(lambda: len(served.hub.subscriptions) == 2)
        async with client.stream("GET", "/v1/runs/r02/stream") as again:
            assert again.status_code == 200
        for stream in held[1:]:
            await stream.__aexit__(None, None, None)
    await wait_until(lambda: not served.hub.subscriptions)


async def test_an_idle_stream_keeps_alive_and_stopping_ends_it(served: Served) -> None:
    async with served.client() as client, client.stream(
            "GET", "/v1/events/stream") as response:
        reading = messages(response)
        assert (await anext(reading)).comment == "stream open"
        assert (await asyncio.wait_for(anext(reading), 5)).comment == "keep-alive"
        served.hub.stop_all()
        rest = await asyncio.wait_for(drain(reading), 5)  # the server ends it
    assert all(m.id is None for m in rest)
    assert not served.hub.subscriptions

