"""Triggering on the real broker: the whole trigger request and run object of seed 002,
scheduled and delayed starts, the run TTL, the dedup window and its boundary, per-run
overrides and priority order, observed through the API and by the endpoint the runs
call."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status

pytestmark = pytest.mark.kafka

# Every field of seed 002's run object (the trigger's answer).
SEED_RUN_FIELDS = {
    "id", "job_id", "project_id", "status", "attempt", "payload", "result", "metadata",
    "error", "triggered_by", "scheduled_at", "started_at", "finished_at", "heartbeat_at",
    "next_retry_at", "expires_at", "parent_run_id", "priority", "idempotency_key",
    "job_version", "workflow_step_run_id", "max_attempts_override", "timeout_secs_override",
    "retry_backoff", "retry_initial_delay_secs", "retry_max_delay_secs", "execution_trace",
    "debug_mode", "continuation_of", "lineage_depth", "tags", "job_version_id", "created_by",
    "batch_id", "concurrency_key", "created_at"}


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def trigger(client: httpx.AsyncClient, job_id: str, body: dict[str, Any],
                  status: int = 201) -> dict[str, Any]:
    response = await client.post(f"/v1/jobs/{job_id}/trigger", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


async def test_the_trigger_takes_every_option_and_answers_the_whole_run(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("full"), f"{endpoint.base_url}/echo",
                               default_run_metadata={"team": "data", "tier": "low"},
                               max_attempts=5, timeout_secs=30)
        body = {"payload": {"n": 1}, "metadata": {"tier": "high"}, "priority": 7,
                "idempotency_key": slug("key"), "correlation_id": "corr-1",
                "concurrency_key": "tenant-a", "tags": {"source": "test"},
                "debug_mode": True, "max_attempts_override": 2, "timeout_secs_override": 9,
                "retry_backoff": "exponential", "retry_initial_delay_secs": 1,
                "retry_max_delay_secs": 4}
        run = await trigger(client, job["id"], body)
        assert SEED_RUN_FIELDS <= set(run), SEED_RUN_FIELDS - set(run)
        assert run["metadata"] == {"team": "data", "tier": "high"}
        assert (run["priority"], run["tags"], run["debug_mode"]) == (7, {"source": "test"}, True)
        assert (run["max_attempts"], run["max_attempts_override"]) == (2, 2)
        assert (run["timeout_secs_override"], run["retry_backoff"]) == (9, "exponential")
        assert (run["retry_initial_delay_secs"], run["retry_max_delay_secs"]) == (1, 4)
        assert run["job_version"] == 1 and run["job_version_id"] == job["version_id"]
        assert run["created_by"] == "default:admin" and run["triggered_by"] == "api"
        assert run["run_token"].startswith("rt_") and run["idempotency_hit"] is False
        assert run["lineage_depth"] == 0 and run["error"] is None
        done = await wait_for_status(client, run["id"], {"completed"})
        assert done["result"]["echo"] == {"n": 1}
        # debug_mode reaches the endpoint; a run without it sends no such header.
        assert endpoint.for_run(run["id"])[0].headers["X-Debug-Mode"] == "true"
        # The token belongs to its run: another run gets another one.
        other = await trigger(client, job["id"], {})
        assert other["run_token"] != run["run_token"]
        await wait_for_status(client, other["id"], {"completed"})
        assert "X-Debug-Mode" not in endpoint.for_run(other["id"])[0].headers
        # A read shows the run, never its token.
        assert (await client.get(f"/v1/runs/{run['id']}")).json()["run_token"] is None


async def test_a_delayed_run_waits_until_its_time(ready_stack: RunningStack,
                                                  endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("later"), f"{endpoint.base_url}/echo")
        run = await trigger(client, job["id"], {"delay_secs": 2})
        assert run["status"] == "delayed" and run["waiting_reason"] == "scheduled"
        assert when(run["scheduled_at"]) - when(run["created_at"]) == timedelta(seconds=2)
        start = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        at = await trigger(client, job["id"], {"scheduled_at": start})
        assert at["status"] == "delayed" and when(at["scheduled_at"]) == when(start)
        await asyncio.sleep(1)
        assert not endpoint.for_run(run["id"]) and not endpoint.for_run(at["id"])
        for each in (run, at):
            done = await wait_for_status(client, each["id"], {"completed"}, timeout=30)
            assert when(done["started_at"]) >= when(each["scheduled_at"])
            assert done["waiting_reason"] is None
        # A time already past starts at once.
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        now = await trigger(client, job["id"], {"scheduled_at": past})
        assert now["status"] != "delayed" and now["scheduled_at"] is None


async def test_start_times_are_checked(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("checks"), f"{endpoint.base_url}/echo")
        soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        cases = [({"scheduled_at": soon, "delay_secs": 5}, "delay_secs"),
                 ({"scheduled_at": "2030-01-01T00:00:00"}, "scheduled_at"),
                 ({"scheduled_at": (datetime.now(UTC) + timedelta(days=400)).isoformat()},
                  "scheduled_at"),
                 ({"delay_secs": -1}, "delay_secs"),
                 ({"retry_initial_delay_secs": 10, "retry_max_delay_secs": 5},
                  "retry_max_delay_secs"),
                 ({"retry_backoff": "random"}, "retry_backoff"),
                 ({"max_attempts_override": 0}, "max_attempts_override")]
        for body, field in cases:
            response = await client.post(f"/v1/jobs/{job['id']}/trigger", json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["details"][0]["field"] == field, body


async def test_a_run_not_started_within_its_ttl_expires(ready_stack: RunningStack,
                                                        endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("ttl"), f"{endpoint.base_url}/slow/4000",
                               max_concurrency=1, run_ttl_secs=1)
        first = await trigger(client, job["id"], {})
        second = await trigger(client, job["id"], {})
        assert when(second["expires_at"]) == when(second["created_at"]) + timedelta(seconds=1)
        expired = await wait_for_status(client, second["id"], {"expired"}, timeout=20)
        assert expired["finished_at"] is not None and expired["attempt"] == 0
        await wait_for_status(client, first["id"], {"completed"}, timeout=20)
        assert not endpoint.for_run(second["id"])
        events = (await client.get(f"/v1/runs/{second['id']}/events")).json()
        assert [e["type"] for e in events] == ["run.triggered", "run.expired"]


async def test_the_dedup_window_and_its_boundary(ready_stack: RunningStack,
                                                 endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("dedup"), f"{endpoint.base_url}/echo",
                               dedup_window_secs=3)
        assert job["dedup_window_secs"] == 3
        key = slug("order")
        first = await trigger(client, job["id"], {"idempotency_key": key, "payload": 1})
        again = await trigger(client, job["id"], {"idempotency_key": key, "payload": 2},
                              status=200)
        assert again["id"] == first["id"] and again["idempotency_hit"] is True
        assert again["payload"] == 1
        bulk = await client.post(f"/v1/jobs/{job['id']}/trigger/bulk", json={"items": [
            {"idempotency_key": key}, {"idempotency_key": slug("other")}]})
        assert bulk.status_code == 201, bulk.text
        hit, new = bulk.json()["results"]
        assert (hit["id"], hit["idempotency_hit"]) == (first["id"], True)
        assert hit["status"] in ("queued", "running", "completed")
        assert new["idempotency_hit"] is False and new["status"] == "queued"
        assert bulk.json()["created"] == 1
        # The window counts from the first trigger: past it the key makes a new run.
        left = when(first["created_at"]) + timedelta(seconds=3) - datetime.now(UTC)
        await asyncio.sleep(max(0.0, left.total_seconds()) + 0.2)
        later = await trigger(client, job["id"], {"idempotency_key": key})
        assert later["id"] != first["id"] and later["idempotency_hit"] is False
        # Another job's runs never answer for this key.
        other_job = await create_job(client, slug("dedup2"), f"{endpoint.base_url}/echo")
        elsewhere = await trigger(client, other_job["id"], {"idempotency_key": key})
        assert elsewhere["id"] not in (first["id"], later["id"])


async def test_overrides_and_priority_order(ready_stack: RunningStack,
                                            endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        failing = await create_job(client, slug("once"), f"{endpoint.base_url}/fail/503",
                                   max_attempts=5, retry_delays_secs=[0])
        run = await trigger(client, failing["id"], {"max_attempts_override": 1})
        done = await wait_for_status(client, run["id"], {"failed"})
        assert done["attempt"] == 1 and done["error_detail"]["status_code"] == 503
        assert "503" in done["error"]

        job = await create_job(client, slug("prio"), f"{endpoint.base_url}/slow/300",
                               max_concurrency=1)
        blocker = await trigger(client, job["id"], {})
        await wait_for_status(client, blocker["id"], {"running"})
        ids = [(await trigger(client, job["id"], {"priority": p}))["id"]
               for p in (0, 5, -1, 5, 10)]
        for run_id in ids:
            await wait_for_status(client, run_id, {"completed"}, timeout=30)
        order = [rid for rid in endpoint.started if rid in set(ids)]
        # Higher priority first; first in, first out among equals.
        assert order == [ids[4], ids[1], ids[3], ids[0], ids[2]]
