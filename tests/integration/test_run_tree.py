"""Runs that make runs, on the real broker: a dependency chain A -> B -> C with its
conditions, cycles refused, children spawned through the callback with their counters
adding up into the parent, and a parent's cancel reaching its running children."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status
from tests.integration.test_execution import callback, token_of, trigger

pytestmark = pytest.mark.kafka


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def runs_of_job(client: httpx.AsyncClient, endpoint: Endpoint,
                      job_id: str, count: int = 1, timeout: float = 30) -> list[str]:
    """Run ids of a job, as its endpoint saw them called."""
    for _ in range(int(timeout * 10)):
        seen = list(dict.fromkeys(r.headers["X-Run-ID"] for r in endpoint.received
                                  if r.headers.get("X-Job-ID") == job_id))
        if len(seen) >= count:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} had fewer than {count} runs called")


async def test_a_dependency_chain_runs_in_order_with_its_lineage(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        a = await create_job(client, slug("a"), f"{endpoint.base_url}/echo")
        b = await create_job(client, slug("b"), f"{endpoint.base_url}/fail/400",
                             max_attempts=1)
        c = await create_job(client, slug("c"), f"{endpoint.base_url}/echo")
        d = await create_job(client, slug("d"), f"{endpoint.base_url}/echo")
        for body, job in (({"depends_on": a["slug"]}, b),
                          ({"depends_on": b["id"], "condition": "on_failure"}, c),
                          ({"depends_on": b["id"], "condition": "on_success"}, d)):
            added = await client.post(f"/v1/jobs/{job['id']}/dependencies", json=body)
            assert added.status_code == 201, added.text
        listed = (await client.get(f"/v1/jobs/{c['id']}/dependencies")).json()["data"]
        assert [(e["depends_on"], e["condition"]) for e in listed] == [(b["id"], "on_failure")]
        # A cycle (A after C, C after B, B after A) and a self-edge are refused.
        cycle = await client.post(f"/v1/jobs/{a['id']}/dependencies",
                                  json={"depends_on": c["id"]})
        assert cycle.status_code == 422 and cycle.json()["error"]["details"][0][
            "field"] == "depends_on", cycle.text
        assert (await client.post(f"/v1/jobs/{a['id']}/dependencies",
                                  json={"depends_on": a["id"]})).status_code == 422

        first = await trigger(client, a["id"], payload={"start": True})
        await wait_for_status(client, first["id"], {"completed"})
        [b_run] = await runs_of_job(client, endpoint, b["id"])
        b_view = await wait_for_status(client, b_run, {"failed"})
        assert (b_view["parent_run_id"], b_view["triggered_by"], b_view["lineage_depth"]) == (
            first["id"], "dependency", 1)
        assert b_view["payload"]["upstream"]["result"]["echo"] == {"start": True}
        [c_run] = await runs_of_job(client, endpoint, c["id"])
        c_view = await wait_for_status(client, c_run, {"completed"})
        assert (c_view["parent_run_id"], c_view["lineage_depth"]) == (b_run, 2)
        await asyncio.sleep(1.0)
        assert not [r for r in endpoint.received if r.headers.get("X-Job-ID") == d["id"]]

        # Removed, the edge triggers nothing more.
        removed = await client.delete(f"/v1/jobs/{b['id']}/dependencies/{a['id']}")
        assert removed.status_code == 204, removed.text
        second = await trigger(client, a["id"], payload={"start": 2})
        await wait_for_status(client, second["id"], {"completed"})
        await asyncio.sleep(1.0)
        assert len(await runs_of_job(client, endpoint, b["id"])) == 1
        gone = await client.delete(f"/v1/jobs/{b['id']}/dependencies/{a['id']}")
        assert gone.status_code == 404
        unnamed = await client.delete(f"/v1/jobs/{b['id']}/dependencies")
        assert unnamed.status_code == 422
        assert unnamed.json()["error"]["details"] == [{"field": "depends_on",
                                                       "reason": "required"}]


async def spawn(ready_stack: RunningStack, token: str, parent: str, job_id: str,
                **body: Any) -> dict[str, Any]:
    async with callback(ready_stack, token) as c:
        answer = await c.post(f"/v1/runs/{parent}/children", json={"job_id": job_id, **body})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())


async def test_children_add_their_counters_up_and_a_parent_cancel_stops_them(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        flow = await create_job(client, slug("flow"), f"{endpoint.base_url}/accept",
                                timeout_secs=300)
        step = await create_job(client, slug("step"), f"{endpoint.base_url}/accept",
                                timeout_secs=300)
        parent = await trigger(client, flow["id"])
        parent_token = await token_of(endpoint, parent["id"])
        await wait_for_status(client, parent["id"], {"running"})
        export = await spawn(ready_stack, parent_token, parent["id"], step["slug"],
                             type="export", payload={"page": 1})
        assert (export["parent_run_id"], export["lineage_depth"], export["type"]) == (
            parent["id"], 1, "export")
        imp = await spawn(ready_stack, parent_token, parent["id"], step["id"], type="import")
        assert (await client.post(f"/v1/runs/{parent['id']}/children",
                                  json={"job_id": step["id"]})).status_code == 403
        for child, counts in ((export, {"numExport": 10, "numPagesGenerated": 2}),
                              (imp, {"numSuccess": 9, "numError": 1})):
            token = await token_of(endpoint, child["id"])
            async with callback(ready_stack, token) as c:
                answer = await c.post(f"/v1/runs/{child['id']}/progress", json=counts)
                assert answer.status_code == 200, answer.text
        async with callback(ready_stack, parent_token) as c:
            await c.post(f"/v1/runs/{parent['id']}/progress", json={"numSuccess": 1})
        want = {"numExport": 10, "numPagesGenerated": 2, "numSuccess": 10, "numError": 1}
        for _ in range(100):
            view = (await client.get(f"/v1/runs/{parent['id']}")).json()
            if view["counters"] == want:
                break
            await asyncio.sleep(0.1)
        assert view["counters"] == want
        child_view = (await client.get(f"/v1/runs/{export['id']}")).json()
        assert (child_view["type"], child_view["triggered_by"]) == ("export", "parent")

        # Canceling the parent reaches both running children.
        assert (await client.post(f"/v1/runs/{parent['id']}/cancel")).status_code == 200
        for child in (export, imp):
            stopped = await wait_for_status(client, child["id"], {"canceling", "canceled"})
            assert stopped["status"] in ("canceling", "canceled")
        async with callback(ready_stack, await token_of(endpoint, export["id"])) as c:
            beat = await c.post(f"/v1/runs/{export['id']}/heartbeat")
            assert beat.json()["cancel_requested"] is True
