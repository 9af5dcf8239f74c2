"""The whole shape, end to end, on the real broker: API -> processor -> executor ->
endpoint -> processor -> projector -> API."""

import asyncio
import uuid

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status

pytestmark = pytest.mark.kafka


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_trigger_runs_to_completion(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("echo"), f"{endpoint.base_url}/echo")
        assert job["version"] == 1 and job["project_id"] == "default"
        response = await client.post(f"/v1/jobs/{job['slug']}/trigger",
                                     json={"payload": {"n": 42}, "metadata": {"who": "test"}})
        assert response.status_code == 201, response.text
        run = response.json()
        assert run["job_id"] == job["id"] and run["payload"] == {"n": 42}

        done = await wait_for_status(client, run["id"], {"completed"})
        assert done["result"] == {"echo": {"n": 42}, "attempt": 1}
        assert done["attempt"] == 1 and done["finished_at"] is not None

        calls = endpoint.for_run(run["id"])
        assert len(calls) == 1
        assert calls[0].payload == {"n": 42}
        headers = calls[0].headers
        assert headers["X-Job-ID"] == job["id"] and headers["X-Attempt"] == "1"
        assert headers["Idempotency-Key"] == f"{run['id']}:1"

        history = (await client.get(f"/v1/runs/{run['id']}/events")).json()
        assert [e["type"] for e in history] == ["run.triggered", "run.dispatched",
                                                "run.completed"]
        seqs = [e["seq"] for e in history]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3


async def test_failing_twice_then_succeeding_completes_on_attempt_3(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("flaky"), f"{endpoint.base_url}/flaky/2",
                               max_attempts=5, retry_delays_secs=[0])
        run = (await client.post(f"/v1/jobs/{job['id']}/trigger", json={})).json()
        done = await wait_for_status(client, run["id"], {"completed", "failed"})
        assert done["status"] == "completed" and done["attempt"] == 3
        assert len(endpoint.for_run(run["id"])) == 3
        types = [e["type"] for e in (await client.get(f"/v1/runs/{run['id']}/events")).json()]
        assert types == ["run.triggered", "run.dispatched",
                         "run.retry_scheduled", "run.requeued", "run.dispatched",
                         "run.retry_scheduled", "run.requeued", "run.dispatched",
                         "run.completed"]


async def test_exhausted_and_permanent_failures(ready_stack: RunningStack,
                                                endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        always_500 = await create_job(client, slug("down"), f"{endpoint.base_url}/fail/503",
                                      max_attempts=2, retry_delays_secs=[0])
        bad_request = await create_job(client, slug("reject"), f"{endpoint.base_url}/fail/400")
        run_a = (await client.post(f"/v1/jobs/{always_500['id']}/trigger")).json()
        run_b = (await client.post(f"/v1/jobs/{bad_request['id']}/trigger")).json()
        a = await wait_for_status(client, run_a["id"], {"failed"})
        b = await wait_for_status(client, run_b["id"], {"failed"})
        assert a["attempt"] == 2 and a["error_detail"]["status_code"] == 503
        assert a["error"] == a["error_detail"]["message"]
        assert b["attempt"] == 1 and b["error_detail"]["retryable"] is False


async def test_cancel_running_queued_and_finished(ready_stack: RunningStack,
                                                  endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("slow"), f"{endpoint.base_url}/slow/1500",
                               max_concurrency=1)
        first = (await client.post(f"/v1/jobs/{job['id']}/trigger")).json()
        second = (await client.post(f"/v1/jobs/{job['id']}/trigger")).json()
        assert second["status"] == "queued"  # max_concurrency=1 holds it back
        await wait_for_status(client, first["id"], {"running"})

        canceled = await client.post(f"/v1/runs/{second['id']}/cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"

        canceling = await client.post(f"/v1/runs/{first['id']}/cancel",
                                      json={"reason": "test"})
        # The executor stops waiting at once, so the answer may show the end already.
        assert canceling.status_code == 200
        assert canceling.json()["status"] in ("canceling", "canceled")
        done = await wait_for_status(client, first["id"], {"canceled", "completed"})
        assert done["status"] == "canceled" and done["code"] == "JOB_SYSTEM_CANCELED"

        again = await client.post(f"/v1/runs/{first['id']}/cancel")
        assert again.status_code == 409
        assert "canceled" in again.json()["error"]["message"]
        assert len(endpoint.for_run(second["id"])) == 0


def fields(response: httpx.Response) -> list[str]:
    return [d["field"] for d in response.json()["error"]["details"]]


async def test_auth_and_project_scoping(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("mine"), f"{endpoint.base_url}/echo")
        run = (await client.post(f"/v1/jobs/{job['id']}/trigger")).json()
    async with ready_stack.client() as anonymous:
        anonymous.headers.pop("Authorization")
        assert (await anonymous.get(f"/v1/jobs/{job['id']}")).status_code == 401
    async with ready_stack.client("not-a-key") as wrong:
        assert (await wrong.get(f"/v1/jobs/{job['id']}")).status_code == 401
    async with ready_stack.client(ready_stack.other_key) as other:
        assert (await other.get(f"/v1/jobs/{job['id']}")).status_code == 404
        assert (await other.get(f"/v1/runs/{run['id']}")).status_code == 404
        assert (await other.post(f"/v1/jobs/{job['id']}/trigger")).status_code == 404
        assert (await other.post(f"/v1/runs/{run['id']}/cancel")).status_code == 404
        assert (await other.get(f"/v1/runs/{run['id']}/events")).status_code == 404
    async with ready_stack.client(ready_stack.viewer_key) as viewer:
        assert (await viewer.get(f"/v1/jobs/{job['id']}")).status_code == 200
        assert (await viewer.post(f"/v1/jobs/{job['id']}/trigger")).status_code == 403


async def test_bad_input_names_the_problem(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        base = {"name": "x", "slug": slug("bad"), "endpoint_url": f"{endpoint.base_url}/echo"}
        wrong_type = await client.post("/v1/jobs", json={**base, "max_attempts": "three"})
        assert wrong_type.status_code == 422 and fields(wrong_type) == ["max_attempts"]
        unknown = await client.post("/v1/jobs", json={**base, "max_atempts": 3})
        assert unknown.status_code == 422 and fields(unknown) == ["max_atempts"]
        bad_slug = await client.post("/v1/jobs", json={**base, "slug": "Has Spaces"})
        assert bad_slug.status_code == 422 and fields(bad_slug) == ["slug"]
        not_json = await client.post("/v1/jobs", content=b"{", headers={
            "Content-Type": "application/json"})
        assert not_json.status_code == 400
        assert not_json.json()["error"]["code"] == "malformed_json"

        schema = {"type": "object", "required": ["n"],
                  "properties": {"n": {"type": "integer"}}}
        job = await create_job(client, slug("typed"), f"{endpoint.base_url}/echo",
                               payload_schema=schema)
        mismatch = await client.post(f"/v1/jobs/{job['id']}/trigger",
                                     json={"payload": {"n": "x"}})
        assert mismatch.status_code == 422 and fields(mismatch) == ["payload/n"]

        duplicate = await client.post("/v1/jobs", json={
            "name": "again", "slug": job["slug"], "endpoint_url": f"{endpoint.base_url}/echo"})
        assert duplicate.status_code == 409
        assert "already exists" in duplicate.json()["error"]["message"]

        too_big = await client.post(f"/v1/jobs/{job['id']}/trigger",
                                    json={"payload": {"n": 1, "pad": "x" * 300_000}})
        assert too_big.status_code == 413
        assert (await client.get("/v1/runs/run_doesnotexist")).status_code == 404


async def test_private_endpoints_are_refused_at_creation(ready_stack: RunningStack) -> None:
    async with ready_stack.client() as client:
        # 10.0.0.0/8 is not in the stack's allowed networks (loopback only). (The executor
        # checks again at connect time: tests/unit/test_executor_call.py.)
        refused = await client.post("/v1/jobs", json={
            "name": "p", "slug": slug("private"), "endpoint_url": "http://10.255.255.1/hook"})
        assert refused.status_code == 422 and fields(refused) == ["endpoint_url"]


async def test_concurrent_triggers_all_complete(ready_stack: RunningStack,
                                                endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("many"), f"{endpoint.base_url}/echo")
        responses = await asyncio.gather(*(
            client.post(f"/v1/jobs/{job['id']}/trigger", json={"payload": i})
            for i in range(40)))
        assert all(r.status_code == 201 for r in responses), [r.text for r in responses
                                                              if r.status_code != 201]
        ids = [r.json()["id"] for r in responses]
        runs = [await wait_for_status(client, i, {"completed"}) for i in ids]
        assert sorted(r["result"]["echo"] for r in runs) == list(range(40))


async def test_bulk_trigger_answers_each_item(ready_stack: RunningStack,
                                              endpoint: Endpoint) -> None:
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    async with ready_stack.client() as client:
        job = await create_job(client, slug("bulk"), f"{endpoint.base_url}/echo",
                               payload_schema=schema)
        items = [{"payload": {"n": i}} for i in range(50)]
        items[7] = {"payload": {"n": "seven"}}
        items[9] = {"payload": {"n": 9}, "unknown": True}
        response = await client.post(f"/v1/jobs/{job['slug']}/trigger/bulk",
                                     json={"items": items})
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["total"], body["created"]) == (50, 48)
        assert body["batch_id"].startswith("batch_")
        by_index = {item["index"]: item for item in body["results"]}
        assert by_index[7]["status"] == "rejected"
        assert by_index[7]["error"]["details"][0]["field"] == "payload/n"
        assert by_index[9]["error"]["details"][0]["field"] == "unknown"
        created = [item["id"] for item in body["results"] if item["status"] == "queued"]
        assert len(created) == 48
        assert all(item["run_token"].startswith("rt_") and not item["idempotency_hit"]
                   for item in body["results"] if item["id"])
        runs = [await wait_for_status(client, run_id, {"completed"}) for run_id in created]
        assert sorted(r["result"]["echo"]["n"] for r in runs) == [
            i for i in range(50) if i not in (7, 9)]
        too_many = await client.post(f"/v1/jobs/{job['id']}/trigger/bulk",
                                     json={"items": [{}] * 1001})
        assert too_many.status_code == 422


async def test_prefer_respond_async_answers_once_accepted(ready_stack: RunningStack,
                                                          endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("async"), f"{endpoint.base_url}/echo")
        response = await client.post(f"/v1/jobs/{job['id']}/trigger", json={"payload": 1},
                                     headers={"Prefer": "respond-async, wait=5"})
        assert response.status_code == 202, response.text
        assert response.headers["Preference-Applied"] == "respond-async"
        body = response.json()
        assert body["id"].startswith("run_") and body["location"] == f"/v1/runs/{body['id']}"
        done = await wait_for_status(client, body["id"], {"completed"})
        assert done["result"]["echo"] == 1
        refused = await client.post("/v1/jobs/nope/trigger", headers={
            "Prefer": "respond-async"})
        assert refused.status_code == 404
