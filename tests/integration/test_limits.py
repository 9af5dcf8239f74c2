"""Concurrency limits, concurrency keys, fairness and waiting_reason on the real broker,
observed where it matters: by the endpoint the runs call (calls in flight at once, and the
order they arrive in)."""

import asyncio
import itertools
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status

pytestmark = pytest.mark.kafka


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _trigger(client: httpx.AsyncClient, job_id: str, body: dict[str, Any]) -> str:
    response = await client.post(f"/v1/jobs/{job_id}/trigger", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _all_complete(client: httpx.AsyncClient, run_ids: list[str]) -> None:
    for run_id in run_ids:
        await wait_for_status(client, run_id, {"completed"}, timeout=120)


async def test_the_job_limit_holds_under_200_concurrent_triggers(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("limit"), f"{endpoint.base_url}/slow/50",
                               max_concurrency=3)
        ids = await asyncio.gather(*(_trigger(client, job["id"], {"payload": i})
                                     for i in range(200)))
        await _all_complete(client, list(ids))
        assert endpoint.peak[job["id"]] <= 3
        assert endpoint.peak[job["id"]] == 3  # and the limit was used, not just respected


async def test_the_per_key_limit_holds_per_key(ready_stack: RunningStack,
                                               endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("perkey"), f"{endpoint.base_url}/slow/100",
                               max_concurrency=5, max_concurrency_per_key=2)
        assert job["max_concurrency_per_key"] == 2
        bodies = [{"payload": {"key": key}, "concurrency_key": key}
                  for _ in range(8) for key in "ABC"]
        ids = await asyncio.gather(*(_trigger(client, job["id"], b) for b in bodies))
        await _all_complete(client, list(ids))
        assert all(endpoint.peak[f"{job['id']}/{key}"] <= 2 for key in "ABC")
        assert endpoint.peak[job["id"]] <= 5
        run = (await client.get(f"/v1/runs/{ids[0]}")).json()
        assert run["concurrency_key"] == "A" and run["waiting_reason"] is None


async def test_keys_take_turns(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("fair"), f"{endpoint.base_url}/slow/150",
                               max_concurrency=1)

        def items(key: str, n: int) -> list[dict[str, Any]]:
            return [{"payload": {"key": key}, "concurrency_key": key} for _ in range(n)]

        ids: list[str] = []
        for key, n in (("A", 20), ("B", 4)):
            response = await client.post(f"/v1/jobs/{job['id']}/trigger/bulk",
                                         json={"items": items(key, n)})
            assert response.status_code == 201, response.text
            ids += [item["id"] for item in response.json()["results"]]
        await _all_complete(client, ids)
        b_ids = set(ids[20:])
        order = [run_id for run_id in endpoint.started if run_id in set(ids)]
        # First in, first out would start B's four runs last (21st to 24th): taking turns,
        # they start among the first few, each next to an A run.
        b_places = [place for place, run_id in enumerate(order) if run_id in b_ids]
        assert len(b_places) == 4 and max(b_places) < 14, b_places
        assert all(b - a >= 2 for a, b in itertools.pairwise(b_places))


async def test_held_runs_say_why(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("held"), f"{endpoint.base_url}/slow/4000",
                               max_concurrency=2, max_concurrency_per_key=1)
        a1 = await _trigger(client, job["id"], {"concurrency_key": "A"})
        await wait_for_status(client, a1, {"running"})
        a2 = await _trigger(client, job["id"], {"concurrency_key": "A"})
        run = (await client.get(f"/v1/runs/{a2}")).json()
        assert (run["status"], run["waiting_reason"]) == ("queued", "concurrency_key")
        b1 = await _trigger(client, job["id"], {"concurrency_key": "B"})
        await wait_for_status(client, b1, {"running"})
        c1 = await _trigger(client, job["id"], {})
        run = (await client.get(f"/v1/runs/{c1}")).json()
        assert (run["status"], run["waiting_reason"]) == ("queued", "concurrency")
        running = (await client.get(f"/v1/runs/{a1}")).json()
        assert running["waiting_reason"] is None
        bad = await client.post(f"/v1/jobs/{job['id']}/trigger",
                                json={"concurrency_key": "x" * 201})
        assert bad.status_code == 422 and "concurrency_key" in bad.text
        await _all_complete(client, [a1, a2, b1, c1])
