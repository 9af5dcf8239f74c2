"""Cancel all waiting runs as tracked operations, on the real broker: of a job (over a
backlog larger than one chunk, queued and delayed), of one job version, and of a whole
project; canceledCount, the operation's progress, and the running run untouched."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status
from tests.integration.test_execution import trigger

pytestmark = pytest.mark.kafka


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def settled(client: httpx.AsyncClient, answer: httpx.Response) -> dict[str, Any]:
    """The operation once completed (the answer, or followed from its 202)."""
    assert answer.status_code in (200, 202), answer.text
    if answer.status_code == 200:
        return dict(answer.json())
    location = answer.headers["Location"]
    for _ in range(600):
        found = await client.get(location)
        if found.status_code == 200 and found.json()["status"] == "completed":
            return dict(found.json())
        await asyncio.sleep(0.1)
    raise AssertionError(f"operation {location} did not complete")


async def statuses(client: httpx.AsyncClient, run_ids: list[str]) -> dict[str, str]:
    return {r: (await client.get(f"/v1/runs/{r}")).json()["status"] for r in run_ids}


async def test_cancel_a_jobs_waiting_runs_over_several_chunks(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client(timeout=60) as client:
        job = await create_job(client, slug("sweep"), f"{endpoint.base_url}/slow/20000",
                               max_concurrency=1, timeout_secs=60)
        running = await trigger(client, job["id"])
        await wait_for_status(client, running["id"], {"running"})
        for _ in range(2):
            bulk = await client.post(f"/v1/jobs/{job['id']}/trigger/bulk",
                                     json={"items": [{"payload": {"n": i}}
                                                     for i in range(600)]})
            assert bulk.status_code == 201, bulk.text
        delayed = [await trigger(client, job["id"], delay_secs=600) for _ in range(5)]
        answer = await client.post("/v1/runs/cancel-waiting", json={"job_id": job["slug"]})
        operation = await settled(client, answer)
        assert operation["canceledCount"] == 1205
        assert (operation["jobs_total"], operation["jobs_done"]) == (1, 1)
        again = (await client.get(f"/v1/operations/{operation['id']}")).json()
        assert again["status"] == "completed" and again["canceledCount"] == 1205
        states = await statuses(client, [running["id"]] + [d["id"] for d in delayed])
        assert states[running["id"]] == "running"
        assert {states[d["id"]] for d in delayed} == {"canceled"}
        view = (await client.get(f"/v1/runs/{delayed[0]['id']}")).json()
        assert view["code"] == "JOB_USER_CANCELED"
        # Nothing is left to cancel: a second operation finds nothing.
        empty = await settled(client, await client.post(
            "/v1/runs/cancel-waiting", json={"job_id": job["id"]}))
        assert empty["canceledCount"] == 0
        await client.post(f"/v1/runs/{running['id']}/cancel")


async def test_cancel_one_versions_waiting_runs(ready_stack: RunningStack,
                                                endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("sweepv"), f"{endpoint.base_url}/echo")
        old = [await trigger(client, job["id"], delay_secs=600) for _ in range(3)]
        patched = await client.patch(f"/v1/jobs/{job['id']}", json={"timeout_secs": 40})
        assert patched.json()["version"] == 2
        new = [await trigger(client, job["id"], delay_secs=600) for _ in range(2)]
        operation = await settled(client, await client.post(
            "/v1/runs/cancel-waiting", json={"job_id": job["id"], "job_version": 1}))
        assert operation["canceledCount"] == 3 and operation["job_version"] == 1
        states = await statuses(client, [r["id"] for r in old + new])
        assert [states[r["id"]] for r in old + new] == ["canceled"] * 3 + ["delayed"] * 2
        bad = await client.post("/v1/runs/cancel-waiting", json={"job_version": 1})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "job_version"


async def test_cancel_a_projects_waiting_runs(ready_stack: RunningStack,
                                              endpoint: Endpoint) -> None:
    # The other project's key: its own jobs only, whatever the rest of the stack holds.
    async with ready_stack.client(ready_stack.other_key) as client:
        jobs = [await create_job(client, slug("sweepp"), f"{endpoint.base_url}/echo")
                for _ in range(3)]
        runs = [await trigger(client, j["id"], delay_secs=600) for j in jobs for _ in range(2)]
        operation = await settled(client, await client.post("/v1/runs/cancel-waiting"))
        assert operation["canceledCount"] == 6
        assert operation["jobs_total"] == operation["jobs_done"] >= 3
        assert set((await statuses(client, [r["id"] for r in runs])).values()) == {"canceled"}
    async with ready_stack.client() as admin:
        hidden = await admin.get(f"/v1/operations/{operation['id']}")
        assert hidden.status_code == 404  # another project's operation
