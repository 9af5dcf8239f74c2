"""Execution on the real broker against real loopback endpoints: each response class, the
fallback, Retry-After, 202 then callbacks, heartbeat loss, timeouts and backoff, the run
token's binding, late callbacks, and cancel of waiting and running runs."""

import asyncio
import uuid
from datetime import datetime
from itertools import pairwise
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status

pytestmark = pytest.mark.kafka

TRACE_FIELDS = {"queue_wait_ms", "dequeue_ms", "connect_ms", "ttfb_ms", "transfer_ms",
                "dispatch_ms", "total_ms"}


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def trigger(client: httpx.AsyncClient, job_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/jobs/{job_id}/trigger", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def run_of(ready_stack: RunningStack, endpoint: Endpoint, path: str, final: set[str],
                 **fields: Any) -> dict[str, Any]:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("exec"), f"{endpoint.base_url}{path}", **fields)
        run = await trigger(client, job["id"], payload={"n": 1})
        return await wait_for_status(client, run["id"], final)


async def token_of(endpoint: Endpoint, run_id: str, attempt: int = 1) -> str:
    for _ in range(200):
        for call in endpoint.for_run(run_id):
            if call.headers.get("X-Attempt") == str(attempt):
                return call.headers["X-Run-Token"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"attempt {attempt} of {run_id} never reached the endpoint")


def callback(ready_stack: RunningStack, token: str) -> httpx.AsyncClient:
    client = ready_stack.client()
    client.headers["Authorization"] = f"Bearer {token}"
    return client


async def test_a_2xx_completes_with_its_result_headers_and_a_measured_trace(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    run = await run_of(ready_stack, endpoint, "/echo", {"completed"})
    assert run["result"] == {"echo": {"n": 1}, "attempt": 1}
    call = endpoint.for_run(run["id"])[0]
    assert call.headers["Idempotency-Key"] == f"{run['id']}:1"
    assert call.headers["X-Run-Token"].startswith("rt_") and call.headers["X-Attempt"] == "1"
    trace = run["execution_trace"]
    assert set(trace) >= TRACE_FIELDS and all(trace[f] is not None and trace[f] >= 0
                                              for f in TRACE_FIELDS), trace
    assert trace["total_ms"] >= trace["dispatch_ms"] >= trace["ttfb_ms"]
    [attempt] = run["attempts"]
    assert (attempt["attempt"], attempt["status"]) == (1, "completed")


@pytest.mark.parametrize(("path", "status", "calls"), [
    ("/fail/404", "failed", 1),       # other 4xx: permanent
    ("/fail/422", "failed", 1),
    ("/redirect", "failed", 1),       # redirects are not followed
    ("/fail/503", "failed", 2),       # 5xx: retried
    ("/fail/408", "failed", 2),       # 408: retried
])
async def test_each_response_class_is_retried_or_not(
        ready_stack: RunningStack, endpoint: Endpoint, path: str, status: str,
        calls: int) -> None:
    run = await run_of(ready_stack, endpoint, path, {status}, max_attempts=2,
                       retry_delays_secs=[0])
    assert len(endpoint.for_run(run["id"])) == calls
    assert [a["attempt"] for a in run["attempts"]] == list(range(1, calls + 1))
    assert run["error_detail"]["retryable"] is (calls == 2)


async def test_the_fallback_takes_a_retryable_failure(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    run = await run_of(ready_stack, endpoint, "/fail/503", {"completed"},
                       fallback_endpoint_url=f"{endpoint.base_url}/echo")
    assert [c.path for c in endpoint.for_run(run["id"])] == ["/fail/503", "/echo"]
    assert run["attempt"] == 1


async def test_retry_after_of_a_429_is_honoured(ready_stack: RunningStack,
                                                endpoint: Endpoint) -> None:
    run = await run_of(ready_stack, endpoint, "/retry-after/2", {"completed"},
                       retry_delays_secs=[0])
    first, second = endpoint.for_run(run["id"])
    assert second.at - first.at >= 2.0
    assert run["attempts"][0]["error"]["retry_after_secs"] == 2


async def test_exponential_backoff_delays_are_observed(ready_stack: RunningStack,
                                                       endpoint: Endpoint) -> None:
    run = await run_of(ready_stack, endpoint, "/fail/503", {"failed"}, max_attempts=4,
                       retry_strategy="exponential", retry_delays_secs=[1])
    times = [c.at for c in endpoint.for_run(run["id"])]
    gaps = [b - a for a, b in pairwise(times)]
    assert len(gaps) == 3
    for gap, wanted in zip(gaps, (1, 2, 4), strict=True):
        assert wanted <= gap <= wanted + 1.5, gaps


async def test_a_timeout_ends_timed_out_after_its_retries(ready_stack: RunningStack,
                                                          endpoint: Endpoint) -> None:
    run = await run_of(ready_stack, endpoint, "/slow/4000", {"timed_out"}, timeout_secs=1,
                       max_attempts=2, retry_delays_secs=[0])
    assert [a["status"] for a in run["attempts"]] == ["retry_scheduled", "timed_out"]
    assert all(a["error"]["kind"] == "timeout" for a in run["attempts"])


async def test_202_then_callbacks_to_completion(ready_stack: RunningStack,
                                               endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("cb"), f"{endpoint.base_url}/accept",
                               heartbeat_timeout_secs=30)
        run = await trigger(client, job["id"], payload={"n": 2})
        other = await trigger(client, job["id"], payload={"n": 3})
        token = await token_of(endpoint, run["id"])
        assert token == run["run_token"]  # the trigger showed attempt 1's token
        async with callback(ready_stack, token) as endpoint_client:
            beat = await endpoint_client.post(f"/v1/runs/{run['id']}/heartbeat")
            assert beat.status_code == 200, beat.text
            assert beat.json() == {"run_id": run["id"], "attempt": 1, "cancel_requested": False}
            assert (await endpoint_client.post(f"/v1/runs/{run['id']}/progress", json={
                "numSuccess": 7, "numError": 1})).status_code == 200
            assert (await endpoint_client.post(f"/v1/runs/{run['id']}/messages", json={
                "status": 1, "text": "halfway", "toolId": 3})).status_code == 200
            # Another run's token, an API key, a forged token: refused before anything.
            wrong = await endpoint_client.post(f"/v1/runs/{other['id']}/complete", json={})
            assert wrong.status_code == 403, wrong.text
            done = await endpoint_client.post(f"/v1/runs/{run['id']}/complete",
                                              json={"result": {"rows": 7}})
            assert done.status_code == 200, done.text
            late = await endpoint_client.post(f"/v1/runs/{run['id']}/heartbeat")
            assert late.status_code == 409 and late.json()["error"]["code"] == "conflict"
        keyed = await client.post(f"/v1/runs/{run['id']}/heartbeat")
        assert keyed.status_code == 403
        forged = await client.post(f"/v1/runs/{run['id']}/heartbeat",
                                   headers={"Authorization": token[:-4] + "AAAA"})
        assert forged.status_code == 401
        final = await wait_for_status(client, run["id"], {"completed"})
        assert final["result"] == {"rows": 7}
        assert final["counters"] == {"numSuccess": 7, "numError": 1}
        assert final["heartbeat_at"] is not None
        assert [a["status"] for a in final["attempts"]] == ["completed"]
        messages = (await client.get(f"/v1/runs/{run['id']}/messages")).json()
        assert [(m["status"], m["text"], m["toolId"]) for m in messages] == [(1, "halfway", 3)]


async def test_an_accepted_run_whose_heartbeats_stop_crashes(ready_stack: RunningStack,
                                                             endpoint: Endpoint) -> None:
    started = datetime.now().timestamp()
    run = await run_of(ready_stack, endpoint, "/accept", {"crashed"},
                       heartbeat_timeout_secs=2, timeout_secs=600)
    assert run["code"] == "ZOMBIE_PROCESS" and run["attempts"][0]["status"] == "crashed"
    assert datetime.now().timestamp() - started >= 2


async def test_a_failed_callback_retries_with_the_next_attempts_token(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("cbfail"), f"{endpoint.base_url}/accept",
                               max_attempts=2, retry_delays_secs=[0])
        run = await trigger(client, job["id"])
        first = await token_of(endpoint, run["id"], 1)
        async with callback(ready_stack, first) as c:
            assert (await c.post(f"/v1/runs/{run['id']}/fail",
                                 json={"error": "disk full"})).status_code == 200
        second = await token_of(endpoint, run["id"], 2)
        async with callback(ready_stack, first) as c:  # attempt 1 is over
            assert (await c.post(f"/v1/runs/{run['id']}/complete")).status_code == 409
        async with callback(ready_stack, second) as c:
            assert (await c.post(f"/v1/runs/{run['id']}/fail", json={
                "error": "still full", "retryable": False})).status_code == 200
        final = await wait_for_status(client, run["id"], {"failed"})
        assert final["error"] == "still full"
        assert [a["status"] for a in final["attempts"]] == ["retry_scheduled", "failed"]


async def test_cancel_each_case(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("cancel"), f"{endpoint.base_url}/slow/30000",
                               max_concurrency=1, timeout_secs=120)
        running = await trigger(client, job["id"])
        waiting = await trigger(client, job["id"])
        await wait_for_status(client, running["id"], {"running"})
        await token_of(endpoint, running["id"])
        # Waiting: canceled at once, as the user's.
        answer = await client.post(f"/v1/runs/{waiting['id']}/cancel")
        assert answer.status_code == 200 and answer.json()["status"] == "canceled"
        assert answer.json()["code"] == "JOB_USER_CANCELED"
        # Running: canceling, the endpoint is told, the executor stops waiting.
        answer = await client.post(f"/v1/runs/{running['id']}/cancel")
        assert answer.status_code == 200
        assert answer.json()["status"] in ("canceling", "canceled")
        final = await wait_for_status(client, running["id"], {"canceled"}, timeout=20)
        assert final["code"] == "JOB_SYSTEM_CANCELED"
        for _ in range(100):
            if any(n.headers.get("X-Run-ID") == running["id"] for n in endpoint.notices):
                break
            await asyncio.sleep(0.05)
        notice = next(n for n in endpoint.notices if n.headers.get("X-Run-ID") == running["id"])
        assert notice.payload["type"] == "run.cancel_requested"
        # Terminal: 409 with a message.
        again = await client.post(f"/v1/runs/{running['id']}/cancel")
        assert again.status_code == 409 and "canceled" in again.json()["error"]["message"]


async def test_an_accepted_run_hears_of_its_cancel_and_acknowledges(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("cbcancel"), f"{endpoint.base_url}/accept")
        run = await trigger(client, job["id"])
        token = await token_of(endpoint, run["id"])
        await wait_for_status(client, run["id"], {"running"})
        for _ in range(50):  # the acceptance is decided a moment after the 202
            if (await client.get(f"/v1/runs/{run['id']}")).json()["attempts"][0][
                    "status"] == "accepted":
                break
            await asyncio.sleep(0.1)
        assert (await client.post(f"/v1/runs/{run['id']}/cancel")).status_code == 200
        async with callback(ready_stack, token) as c:
            beat = await c.post(f"/v1/runs/{run['id']}/heartbeat")
            assert beat.status_code == 200 and beat.json()["cancel_requested"] is True
            assert (await c.post(f"/v1/runs/{run['id']}/fail",
                                 json={"error": "stopped on request"})).status_code == 200
        final = await wait_for_status(client, run["id"], {"canceled"})
        assert final["code"] == "JOB_SYSTEM_CANCELED"


async def test_a_dead_run_is_listed_and_replayed_as_its_continuation(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("dlq"), f"{endpoint.base_url}/fail/500",
                               max_attempts=2, retry_delays_secs=[0])
        run = await trigger(client, job["id"], payload={"order": 42})
        await wait_for_status(client, run["id"], {"failed"})
        page = (await client.get("/v1/runs/dlq", params={"job_id": job["id"]})).json()
        assert [d["run"]["id"] for d in page["data"]] == [run["id"]]
        assert page["data"][0]["run"]["attempt"] == 2
        # The endpoint is fixed; the replay runs the same payload as a new run.
        await client.patch(f"/v1/jobs/{job['id']}",
                           json={"endpoint_url": f"{endpoint.base_url}/echo",
                                 "version_policy": "latest"})
        replay = await client.post(f"/v1/runs/{run['id']}/replay")
        assert replay.status_code == 201, replay.text
        again = replay.json()
        assert (again["continuation_of"], again["lineage_depth"]) == (run["id"], 1)
        assert again["payload"] == {"order": 42} and again["triggered_by"] == "replay"
        done = await wait_for_status(client, again["id"], {"completed"})
        assert done["result"]["echo"] == {"order": 42}
        # It has left the list; a second replay is refused, as is replaying a live run.
        page = (await client.get("/v1/runs/dlq", params={"job_id": job["id"]})).json()
        assert page["data"] == []
        listed = (await client.get("/v1/runs/dlq", params={
            "job_id": job["id"], "include_replayed": "true"})).json()["data"]
        assert listed[0]["replayed_by"] == again["id"]
        assert (await client.post(f"/v1/runs/{run['id']}/replay")).status_code == 409
        assert (await client.post(f"/v1/runs/{again['id']}/replay")).status_code == 409
