"""The live streams on real Kafka, through the whole stack: a run's stream dropped and
resumed with Last-Event-ID while the run goes on (nothing missed, nothing repeated, the
stream ends after the terminal event); the project's stream filtered by job and type,
dropped and resumed likewise; another project's key sees nothing of either."""

import asyncio
import signal
import time
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.sse import Message, drain, events_until, messages
from tests.integration.stackutil import (
    RunningStack,
    create_job,
    wait_for_status,
    wait_ready,
)
from tests.integration.test_execution import callback, slug, token_of, trigger

pytestmark = pytest.mark.kafka

WAIT = 30.0


async def history(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/runs/{run_id}/events")
    assert response.status_code == 200, response.text
    return list(response.json())


def types_of(sent: list[Message]) -> list[str | None]:
    return [m.event for m in sent]


async def test_a_runs_stream_resumes_after_a_dropped_connection_and_ends_with_the_run(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("sse-run"), f"{endpoint.base_url}/accept",
                               heartbeat_timeout_secs=60)
        run = await trigger(client, job["id"], payload={"n": 1})
        path = f"/v1/runs/{run['id']}/stream"

        # First connection: the run is working on its attempt (the endpoint accepted it).
        async with client.stream("GET", path) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            first = await events_until(messages(response),
                                       lambda got: "run.accepted" in types_of(got), WAIT)
        # Dropped. Meanwhile the run goes on: progress, a message, a heartbeat.
        token = await token_of(endpoint, run["id"])
        async with callback(ready_stack, token) as endpoint_client:
            for request in (("progress", {"numSuccess": 3}),
                            ("messages", {"status": 1, "text": "half", "toolId": 1}),
                            ("heartbeat", None)):
                answer = await endpoint_client.post(f"/v1/runs/{run['id']}/{request[0]}",
                                                    json=request[1])
                assert answer.status_code == 200, answer.text

            # Second connection, resumed after the last event received.
            async with client.stream("GET", path,
                                     headers={"Last-Event-ID": first[-1].id or ""}) as again:
                assert again.status_code == 200
                reading = messages(again)
                second = await events_until(
                    reading, lambda got: "run.heartbeat_recorded" in types_of(got), WAIT)
                # The run ends while this stream is open: it sends the end, then closes.
                done = await endpoint_client.post(f"/v1/runs/{run['id']}/complete",
                                                  json={"result": {"rows": 3}})
                assert done.status_code == 200, done.text
                second += [m for m in await asyncio.wait_for(drain(reading), WAIT)
                           if m.id is not None]

        sent = first + second
        applied = await history(client, run["id"])
        assert [int(m.id or 0) for m in sent] == [e["seq"] for e in applied]  # no gap, no repeat
        assert [m.data["event_id"] for m in sent] == [e["event_id"] for e in applied]
        assert sent[-1].event == "run.completed" == applied[-1]["type"]
        assert {"run.progress_reported", "run.message_logged"} <= set(types_of(second))
        assert sent[-1].data["data"]["result"] == {"rows": 3}

        # Opened on the ended run: the whole history at once, then the end.
        async with client.stream("GET", path) as replay:
            replayed = await asyncio.wait_for(drain(messages(replay)), WAIT)
        assert [m.data for m in replayed if m.id] == [m.data for m in sent]

    # Another project's key: no such run.
    async with ready_stack.client(ready_stack.other_key) as other:
        response = await other.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_the_events_stream_filtered_by_job_and_type_resumes_where_it_dropped(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    wanted = ["run.triggered", "run.completed"]
    async with ready_stack.client() as client:
        job = await create_job(client, slug("sse-events"), f"{endpoint.base_url}/echo")
        noise = await create_job(client, slug("sse-noise"), f"{endpoint.base_url}/echo")
        params = {"job": job["slug"], "type": wanted}
        runs: list[str] = []
        async with client.stream("GET", "/v1/events/stream", params=params) as response:
            assert response.status_code == 200, await response.aread()
            reading = messages(response)
            assert (await anext(reading)).comment == "stream open"
            for n in range(2):
                runs.append((await trigger(client, job["id"], payload={"n": n}))["id"])
                await trigger(client, noise["id"], payload={"n": n})
            first = await events_until(reading, lambda got: len(got) >= 3, WAIT)
        # Dropped after three of the first two runs' four events; two more runs meanwhile.
        for n in range(2, 4):
            runs.append((await trigger(client, job["id"], payload={"n": n}))["id"])
            await trigger(client, noise["id"], payload={"n": n})
        for run_id in runs:
            await wait_for_status(client, run_id, {"completed"})
        async with client.stream("GET", "/v1/events/stream", params=params,
                                 headers={"Last-Event-ID": first[-1].id or ""}) as again:
            second = await events_until(messages(again), lambda got: len(first) + len(
                got) >= 2 * len(runs), WAIT)

        sent = first + second
        positions = [int(m.id or 0) for m in sent]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert {m.data["job_id"] for m in sent} == {job["id"]}
        got = {(m.data["run_id"], m.event) for m in sent}
        assert len(got) == len(sent)  # nothing repeated
        assert got == {(run_id, t) for run_id in runs for t in wanted}  # nothing missing
        for message in sent:  # each as the run's history shows it
            shown = {e["event_id"]: e for e in await history(client, message.data["run_id"])}
            event = shown[message.data["event_id"]]
            assert {k: message.data[k] for k in event} == event

    # Another project's key sees none of it, even from the start and filtered by the job.
    async with ready_stack.client(ready_stack.other_key) as other, other.stream(
            "GET", "/v1/events/stream", params={"job": job["id"], "after": 0}) as foreign:
        assert foreign.status_code == 200
        reading = messages(foreign)
        assert (await anext(reading)).comment == "stream open"
        with pytest.raises(TimeoutError):
            await events_until(reading, lambda got: bool(got), 3.0)


async def test_stopping_the_api_ends_its_open_streams_at_once(
        ready_stack: RunningStack) -> None:
    # uvicorn waits for open responses before it stops, and a stream never ends by itself:
    # the API ends its streams on SIGTERM, so the process stops promptly and cleanly.
    api = ready_stack.stack["api"]
    async with ready_stack.client() as client, client.stream(
            "GET", "/v1/events/stream") as response:
        reading = messages(response)
        assert (await anext(reading)).comment == "stream open"
        started = time.monotonic()
        await asyncio.to_thread(api.stop, 10.0)
        left = await asyncio.wait_for(drain(reading), 5)
    assert all(m.id is None for m in left)
    # Ended by its own SIGTERM, which uvicorn raises again after its graceful shutdown;
    # not by the SIGKILL that stop() sends after 10 s.
    assert api.proc is not None and api.proc.returncode == -signal.SIGTERM, api.tail()
    assert time.monotonic() - started < 5, "the API took its time to stop"
    api.start()
    await wait_ready(ready_stack)
