"""Start gates on the real broker: the rate limit, observed by the endpoint the runs call
and by the processor's start times; the execution window; and the drain of a deleted
job's queue by the processor's timer."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status

pytestmark = pytest.mark.kafka


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def bulk(client: httpx.AsyncClient, job_id: str, items: list[dict[str, Any]]) -> list[str]:
    response = await client.post(f"/v1/jobs/{job_id}/trigger/bulk", json={"items": items})
    assert response.status_code == 201, response.text
    return [r["id"] for r in response.json()["results"]]


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


async def test_the_rate_limit_holds_and_the_held_runs_start_when_it_has_room(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("rate"), f"{endpoint.base_url}/echo",
                               rate_limit_max=3, rate_limit_window_secs=2)
        ids = await bulk(client, job["id"], [{"payload": i} for i in range(9)])
        await asyncio.sleep(0.5)
        held = [(await client.get(f"/v1/runs/{rid}")).json() for rid in ids]
        waiting = [r for r in held if r["status"] == "queued"]
        assert len(waiting) == 6 and {r["waiting_reason"] for r in waiting} == {"rate_limit"}
        done = [await wait_for_status(client, rid, {"completed"}, timeout=30) for rid in ids]
        # As decided (the processor's start times) and as seen by the endpoint (whose
        # arrival times can bunch by a few milliseconds of delivery jitter).
        started = [when(r["started_at"]).timestamp() for r in done]
        assert most_in_any_window(started, 2.0) <= 3
        arrived = [endpoint.for_run(rid)[0].at for rid in ids]
        assert most_in_any_window(arrived, 1.9) <= 3
        # And it is a limit, not a stall: three windows' worth took about three windows.
        assert max(started) - min(started) < 8


async def test_a_rate_key_limits_each_customer_alone(ready_stack: RunningStack,
                                                      endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("percust"), f"{endpoint.base_url}/echo",
                               rate_limit_keys=[{"name": "customer", "max": 2,
                                                 "window_secs": 3}])
        items = [{"payload": i, "metadata": {"customer": "acme"}} for i in range(5)]
        items += [{"payload": 9, "metadata": {"customer": "bolt"}}, {"payload": 10}]
        ids = await bulk(client, job["id"], items)
        done = [await wait_for_status(client, rid, {"completed"}, timeout=30) for rid in ids]
        started = [when(r["started_at"]).timestamp() for r in done]
        assert most_in_any_window(started[:5], 3.0) <= 2
        # bolt's run and the run without a customer did not wait behind acme's.
        assert max(started[5:]) - min(started) < 1.0
        assert max(started[:5]) - min(started[:5]) >= 6.0  # acme's fifth: third window


async def test_runs_wait_outside_the_window_and_start_once_it_opens(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        # A window of one minute, half an hour away: closed for the whole test.
        far = (datetime.now(UTC) + timedelta(minutes=30)).minute
        job = await create_job(client, slug("window"), f"{endpoint.base_url}/echo",
                               execution_window_cron=f"{far} * * * *")
        ids = await bulk(client, job["id"], [{"payload": i} for i in range(3)])
        await asyncio.sleep(1.5)
        runs = [(await client.get(f"/v1/runs/{rid}")).json() for rid in ids]
        assert {(r["status"], r["waiting_reason"]) for r in runs} == {
            ("queued", "execution_window")}
        assert not any(endpoint.for_run(rid) for rid in ids)
        # Opening the window (a new version) lets them start at once.
        opened = await client.patch(f"/v1/jobs/{job['id']}",
                                    json={"execution_window_cron": "* * * * *"})
        assert opened.status_code == 200, opened.text
        for rid in ids:
            done = await wait_for_status(client, rid, {"completed"}, timeout=30)
            assert done["waiting_reason"] is None


async def test_the_timer_drains_a_deleted_jobs_long_queue(ready_stack: RunningStack,
                                                          endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("drain"), f"{endpoint.base_url}/slow/3000",
                               max_concurrency=1)
        ids = await bulk(client, job["id"], [{} for _ in range(1000)])
        ids += await bulk(client, job["id"], [{} for _ in range(200)])
        await wait_for_status(client, ids[0], {"running"})
        gone = await client.delete(f"/v1/jobs/{job['id']}")
        assert gone.status_code == 204
        # More than two chunks of 500: the delete cancels the first, the timer the rest.
        last = await wait_for_status(client, ids[-1], {"canceled"}, timeout=30)
        assert last["finished_at"] is not None
        statuses = {(await client.get(f"/v1/runs/{rid}")).json()["status"]
                    for rid in ids[1:]}
        assert statuses == {"canceled"}
        assert len([r for r in endpoint.started if r in set(ids)]) == 1
