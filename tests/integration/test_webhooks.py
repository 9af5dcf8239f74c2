"""Webhooks on the real broker: each run's end is delivered signed per Standard Webhooks
and verified by the receiving server with the reference library; tampering is caught;
failed tries are retried under the same webhook-id; 410 Gone disables the webhook; every
try shows on the run."""

import asyncio
import uuid
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.endpoint import Endpoint, Received
from tests.integration.stackutil import RunningStack, create_job, wait_for_status
from tests.integration.test_execution import trigger

pytestmark = pytest.mark.kafka


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def hooks_for(endpoint: Endpoint, run_id: str, count: int = 1,
                    timeout: float = 30) -> list[Received]:
    for _ in range(int(timeout * 10)):
        found = [h for h in endpoint.hooks
                 if (h.payload or {}).get("data", {}).get("run_id") == run_id]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} webhook deliveries for {run_id}")


async def deliveries(ready_stack: RunningStack, run_id: str, count: int) -> list[Any]:
    async with ready_stack.client() as client:
        for _ in range(100):
            run = (await client.get(f"/v1/runs/{run_id}")).json()
            if len(run["webhook_deliveries"]) >= count:
                return list(run["webhook_deliveries"])
            await asyncio.sleep(0.1)
    raise AssertionError(f"the run shows fewer than {count} deliveries: {run}")


async def test_a_runs_end_is_delivered_signed_and_verified_by_the_reference_library(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("hook"), f"{endpoint.base_url}/echo",
                               webhook_url=f"{endpoint.base_url}/hook")
        secret = job["webhook_secret"]
        assert secret.startswith("whsec_")  # generated, shown this once
        assert (await client.get(f"/v1/jobs/{job['id']}")).json()["webhook_secret"] == "********"
        run = await trigger(client, job["id"], payload={"n": 5})
        await wait_for_status(client, run["id"], {"completed"})
    [hook] = await hooks_for(endpoint, run["id"])
    message = Webhook(secret).verify(hook.raw, hook.headers)
    assert message["type"] == "run.completed"
    assert message["data"]["result"] == {"echo": {"n": 5}, "attempt": 1}
    assert hook.headers["webhook-signature"].startswith("v1,")
    for tampered_body, headers in (
            (hook.raw.replace(b'"n":5', b'"n":6'), hook.headers),
            (hook.raw, {**hook.headers, "webhook-id": "msg_forged"}),
            (hook.raw, {**hook.headers,
                        "webhook-timestamp": str(int(hook.headers["webhook-timestamp"]) + 1)})):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(tampered_body, headers)
    [delivery] = await deliveries(ready_stack, run["id"], 1)
    assert (delivery["delivered"], delivery["final"], delivery["status_code"]) == (
        True, True, 200)
    assert delivery["message_id"] == hook.headers["webhook-id"]


async def test_a_given_secret_signs_and_a_failed_run_is_delivered_too(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    async with ready_stack.client() as client:
        job = await create_job(client, slug("hookfail"), f"{endpoint.base_url}/fail/400",
                               webhook_url=f"{endpoint.base_url}/hook", webhook_secret=secret)
        assert job["webhook_secret"] == "********"
        run = await trigger(client, job["id"])
        await wait_for_status(client, run["id"], {"failed"})
    [hook] = await hooks_for(endpoint, run["id"])
    message = Webhook(secret).verify(hook.raw, hook.headers)
    assert message["type"] == "run.failed" and message["data"]["error"]["status_code"] == 400


async def test_a_failed_delivery_is_retried_under_the_same_id(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("hookflaky"), f"{endpoint.base_url}/echo",
                               webhook_url=f"{endpoint.base_url}/hook-flaky")
        run = await trigger(client, job["id"])
        await wait_for_status(client, run["id"], {"completed"})
    first, second = await hooks_for(endpoint, run["id"], 2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.at - first.at >= 0.9
    for hook in (first, second):
        Webhook(job["webhook_secret"]).verify(hook.raw, hook.headers)
    tries = await deliveries(ready_stack, run["id"], 2)
    assert [(t["delivery_attempt"], t["status_code"], t["delivered"]) for t in tries] == [
        (1, 500, False), (2, 200, True)]


async def test_410_gone_disables_the_webhook_until_it_changes(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("hookgone"), f"{endpoint.base_url}/echo",
                               webhook_url=f"{endpoint.base_url}/hook-gone")
        first = await trigger(client, job["id"])
        await wait_for_status(client, first["id"], {"completed"})
        await hooks_for(endpoint, first["id"])
        for _ in range(100):
            if (await client.get(f"/v1/jobs/{job['id']}")).json()["webhook_disabled"]:
                break
            await asyncio.sleep(0.1)
        assert (await client.get(f"/v1/jobs/{job['id']}")).json()["webhook_disabled"]
        second = await trigger(client, job["id"])
        await wait_for_status(client, second["id"], {"completed"})
        await asyncio.sleep(1.5)
        assert not [h for h in endpoint.hooks
                    if (h.payload or {}).get("data", {}).get("run_id") == second["id"]]
        # A new URL starts deliveries again.
        patched = await client.patch(f"/v1/jobs/{job['id']}",
                                     json={"webhook_url": f"{endpoint.base_url}/hook"})
        assert patched.status_code == 200 and not patched.json()["webhook_disabled"]
        third = await trigger(client, job["id"])
        await wait_for_status(client, third["id"], {"completed"})
    [hook] = await hooks_for(endpoint, third["id"])
    Webhook(job["webhook_secret"]).verify(hook.raw, hook.headers)
