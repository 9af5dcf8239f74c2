"""Project quotas on the real broker: set by an admin through the log, enforced at the
API under concurrency, answered 429 JOB_QUOTA_EXCEEDED with Retry-After, per item in
bulk, and lifted again. Runs in the "other" project, so no other test's runs count."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job

pytestmark = pytest.mark.kafka


async def set_quotas(client: httpx.AsyncClient, **limits: int | None) -> dict[str, object]:
    response = await client.put("/v1/quotas", json=limits)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_quotas_refuse_past_the_limit_and_nothing_more(ready_stack: RunningStack,
                                                             endpoint: Endpoint) -> None:
    async with ready_stack.client(ready_stack.other_key) as client:
        try:
            await _scenario(ready_stack, client, endpoint)
        finally:
            await set_quotas(client)  # no limits again, whatever happened


async def _scenario(stack: RunningStack, client: httpx.AsyncClient,
                    endpoint: Endpoint) -> None:
    async with stack.client(stack.viewer_key) as viewer:
        denied = await viewer.put("/v1/quotas", json={"max_queued_runs": 1})
        assert denied.status_code == 403
        assert (await viewer.get("/v1/quotas")).status_code == 200
    bad = await client.put("/v1/quotas", json={"max_queued_runs": 0})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "max_queued_runs"

    # A window half an hour away: the runs stay queued, so every one counts.
    far = (datetime.now(UTC) + timedelta(minutes=30)).minute
    job = await create_job(client, f"quota-{uuid.uuid4().hex[:8]}",
                           f"{endpoint.base_url}/echo", execution_window_cron=f"{far} * * * *")
    shown = await set_quotas(client, max_queued_runs=5)
    assert shown["max_queued_runs"] == 5 and shown["max_runs_per_day"] is None

    answers = await asyncio.gather(*(client.post(f"/v1/jobs/{job['id']}/trigger", json={})
                                     for _ in range(50)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 5 + [429] * 45, statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "JOB_QUOTA_EXCEEDED"
    assert refused.json()["error"]["details"] == [{"field": "quota",
                                                   "reason": "max_queued_runs"}]
    assert refused.headers["Retry-After"] == "1"
    usage = (await client.get("/v1/quotas")).json()
    assert usage["queued_runs"] == 5

    bulk = await client.post(f"/v1/jobs/{job['id']}/trigger/bulk",
                             json={"items": [{}, {"payload": "x"}]})
    assert bulk.status_code == 201 and bulk.json()["created"] == 0
    assert {r["error"]["code"] for r in bulk.json()["results"]} == {"JOB_QUOTA_EXCEEDED"}

    # Per day: what was made today counts, and the refusal says to wait for midnight.
    today = usage["runs_today"]
    await set_quotas(client, max_runs_per_day=today + 2)
    made = [await client.post(f"/v1/jobs/{job['id']}/trigger", json={}) for _ in range(3)]
    assert [m.status_code for m in made] == [201, 201, 429]
    assert made[2].json()["error"]["details"][0]["reason"] == "max_runs_per_day"
    assert 1 <= int(made[2].headers["Retry-After"]) <= 86_400

    # Lifted: triggers go through again.
    await set_quotas(client)
    again = await client.post(f"/v1/jobs/{job['id']}/trigger", json={})
    assert again.status_code == 201, again.text
