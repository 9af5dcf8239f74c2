"""Job definitions end to end on the real broker: every field of seed 002's job object
on create and read, and enable/disable through the batch routes."""

import uuid

import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, wait_for_status

pytestmark = pytest.mark.kafka

SEED_002_JOB_FIELDS = {
    "id", "project_id", "group_id", "name", "slug", "description", "cron", "payload_schema",
    "tags", "endpoint_url", "fallback_endpoint_url", "max_attempts", "timeout_secs",
    "max_concurrency", "execution_window_cron", "timezone", "rate_limit_max",
    "rate_limit_window_secs", "max_concurrency_per_key", "rate_limit_keys",
    "default_run_metadata", "dedup_window_secs", "enabled", "webhook_url", "webhook_secret",
    "run_ttl_secs", "retry_strategy", "retry_delays_secs", "environment_id", "version",
    "version_id", "version_policy", "backwards_compatible", "created_by", "updated_by",
    "created_at", "updated_at"}
# Beyond the seed: when the cron schedule fires next.
OUR_JOB_FIELDS = {"next_tick_at", "retry_max_delay_secs", "retry_jitter", "heartbeat_timeout_secs",
                  "webhook_disabled"}


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_create_with_every_field_reads_back(ready_stack: RunningStack,
                                                  endpoint: Endpoint) -> None:
    body = {
        "name": "Everything", "slug": slug("full"), "description": "all fields",
        "group_id": "grp-1", "endpoint_url": f"{endpoint.base_url}/echo",
        "fallback_endpoint_url": f"{endpoint.base_url}/echo", "max_attempts": 4,
        "timeout_secs": 20, "retry_strategy": "custom", "retry_delays_secs": [1, 2],
        "payload_schema": {"type": "object"}, "tags": {"team": "data"},
        "default_run_metadata": {"src": "it"}, "cron": "*/5 * * * *",
        "timezone": "Europe/Paris", "max_concurrency": 10, "run_ttl_secs": 3600,
        "environment_id": "prod", "enabled": True,
        "execution_window_cron": "* 9-17 * * 1-5", "rate_limit_max": 100,
        "rate_limit_window_secs": 60, "max_concurrency_per_key": 2,
        "rate_limit_keys": [{"name": "acme", "max": 5, "window_secs": 10}],
        "webhook_url": f"{endpoint.base_url}/hook", "webhook_secret": "very-secret-value",
        "version_policy": "latest", "backwards_compatible": False,
    }
    async with ready_stack.client() as client:
        created = await client.post("/v1/jobs", json=body)
        assert created.status_code == 201, created.text
        job = created.json()
        assert set(job) == SEED_002_JOB_FIELDS | OUR_JOB_FIELDS
        assert job["webhook_secret"] == "********"
        assert job["version"] == 1 and job["version_id"].startswith("jv_")
        assert job["updated_by"] == job["created_by"] == "default:admin"
        for field, value in body.items():
            if field != "webhook_secret":
                assert job[field] == value, field
        read = (await client.get(f"/v1/jobs/{body['slug']}")).json()
        assert read == job

        half = await client.post("/v1/jobs", json={**body, "slug": slug("half"),
                                                   "rate_limit_window_secs": None})
        assert half.status_code == 422
        assert half.json()["error"]["details"][0]["field"] == "rate_limit_window_secs"
        window = await client.post("/v1/jobs", json={**body, "slug": slug("win"),
                                                     "execution_window_cron": "61 * * * *"})
        assert window.status_code == 422
        assert window.json()["error"]["details"][0]["field"] == "execution_window_cron"


async def test_disable_refuses_triggers_and_enable_takes_them_again(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        a = (await client.post("/v1/jobs", json={
            "name": "a", "slug": slug("tog"), "endpoint_url": f"{endpoint.base_url}/echo"})).json()
        b = (await client.post("/v1/jobs", json={
            "name": "b", "slug": slug("tog"), "endpoint_url": f"{endpoint.base_url}/echo"})).json()
        off = await client.post("/v1/jobs/batch-disable",
                                json={"ids": [a["id"], b["slug"], "no-such-job"]})
        assert off.status_code == 200, off.text
        assert off.json() == {"updated": 2}
        again = await client.post("/v1/jobs/batch-disable", json={"ids": [a["id"]]})
        assert again.json() == {"updated": 0}
        assert (await client.get(f"/v1/jobs/{a['id']}")).json()["enabled"] is False

        refused = await client.post(f"/v1/jobs/{a['slug']}/trigger", json={})
        assert refused.status_code == 409
        assert "disabled" in refused.json()["error"]["message"]

        on = await client.post("/v1/jobs/batch-enable", json={"ids": [a["slug"]]})
        assert on.json() == {"updated": 1}
        run = await client.post(f"/v1/jobs/{a['slug']}/trigger", json={})
        assert run.status_code == 201, run.text
        await wait_for_status(client, run.json()["id"], {"completed"})

        empty = await client.post("/v1/jobs/batch-enable", json={"ids": []})
        assert empty.status_code == 422

    async with ready_stack.client(key="viewer-key-not-known") as client:
        denied = await client.post("/v1/jobs/batch-enable", json={"ids": [a["id"]]})
        assert denied.status_code == 401


async def test_delete_hides_the_job_keeps_its_runs_and_cancels_waiting_ones(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = (await client.post("/v1/jobs", json={
            "name": "d", "slug": slug("del"), "endpoint_url": f"{endpoint.base_url}/slow/1500",
            "max_concurrency": 1})).json()
        first = (await client.post(f"/v1/jobs/{job['slug']}/trigger", json={})).json()
        second = (await client.post(f"/v1/jobs/{job['slug']}/trigger", json={})).json()
        assert second["status"] == "queued"
        await wait_for_status(client, first["id"], {"running"})

        gone = await client.delete(f"/v1/jobs/{job['slug']}")
        assert gone.status_code == 204, gone.text
        assert (await client.get(f"/v1/jobs/{job['id']}")).status_code == 404
        assert (await client.get(f"/v1/jobs/{job['slug']}")).status_code == 404
        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 404
        trigger = await client.post(f"/v1/jobs/{job['id']}/trigger", json={})
        assert trigger.status_code == 404
        toggled = await client.post("/v1/jobs/batch-disable", json={"ids": [job["id"]]})
        assert toggled.json() == {"updated": 0}

        waiting = (await client.get(f"/v1/runs/{second['id']}")).json()
        assert waiting["status"] == "canceled"
        history = (await client.get(f"/v1/runs/{second['id']}/events")).json()
        assert history[-1]["data"]["reason"] == "job deleted"
        # The running run may finish, and stays readable.
        done = await wait_for_status(client, first["id"], {"completed"})
        assert done["job_id"] == job["id"]

        again = await client.post("/v1/jobs", json={
            "name": "d", "slug": job["slug"], "endpoint_url": f"{endpoint.base_url}/echo"})
        assert again.status_code == 409
        assert "deleted" in again.json()["error"]["message"]


async def test_patch_makes_versions_and_keeps_the_slug(ready_stack: RunningStack,
                                                       endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job = (await client.post("/v1/jobs", json={
            "name": "p", "slug": slug("patch"), "endpoint_url": f"{endpoint.base_url}/echo",
            "fallback_endpoint_url": f"{endpoint.base_url}/echo", "tags": {"a": "1"},
            "webhook_secret": "first-secret"})).json()
        changed = await client.patch(f"/v1/jobs/{job['slug']}", json={
            "timeout_secs": 90, "fallback_endpoint_url": None, "slug": job["slug"],
            "webhook_secret": "second-secret"})
        assert changed.status_code == 200, changed.text
        v2 = changed.json()
        assert v2["version"] == 2 and v2["version_id"] != job["version_id"]
        assert v2["timeout_secs"] == 90 and v2["fallback_endpoint_url"] is None
        assert v2["tags"] == {"a": "1"} and v2["webhook_secret"] == "********"
        assert v2["updated_at"] > job["updated_at"]
        v3 = (await client.patch(f"/v1/jobs/{job['id']}", json={"name": "p3"})).json()
        assert v3["version"] == 3 and v3["name"] == "p3"

        bad = await client.patch(f"/v1/jobs/{job['id']}", json={"slug": "other-slug"})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "slug"
        half = await client.patch(f"/v1/jobs/{job['id']}", json={"rate_limit_max": 3})
        assert half.status_code == 422
        assert half.json()["error"]["details"][0]["field"] == "rate_limit_window_secs"

        page = (await client.get(f"/v1/jobs/{job['id']}/versions", params={"limit": 2})).json()
        assert [v["version"] for v in page["data"]] == [3, 2] and page["has_more"]
        rest = (await client.get(f"/v1/jobs/{job['id']}/versions",
                                 params={"limit": 2, "cursor": page["next_cursor"]})).json()
        assert [v["version"] for v in rest["data"]] == [1] and not rest["has_more"]
        assert rest["next_cursor"] is None
        first = rest["data"][0]
        assert first["id"] == job["version_id"] and first["timeout_secs"] == 30
        assert first["fallback_endpoint_url"] == f"{endpoint.base_url}/echo"
        assert page["data"][1]["changed_fields"] == ["fallback_endpoint_url", "timeout_secs",
                                                     "webhook_secret_sealed",
                                                     "webhook_secret_sha256"]
        one = await client.get(f"/v1/jobs/{job['slug']}/versions/{v2['version_id']}")
        assert one.status_code == 200 and one.json()["timeout_secs"] == 90
        missing = await client.get(f"/v1/jobs/{job['slug']}/versions/jv_nope")
        assert missing.status_code == 404
        bad_cursor = await client.get(f"/v1/jobs/{job['id']}/versions",
                                      params={"cursor": "!!"})
        assert bad_cursor.status_code == 422


async def test_list_filters_and_pages(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    group = uuid.uuid4().hex[:12]
    async with ready_stack.client() as client:
        made = []
        for i in range(5):
            body = {"name": f"l{i}", "slug": slug("list"), "group_id": group,
                    "endpoint_url": f"{endpoint.base_url}/echo",
                    "environment_id": "prod" if i % 2 else "dev",
                    "tags": {"team": "a" if i < 3 else "b", "tier": str(i % 2)}}
            made.append((await client.post("/v1/jobs", json=body)).json())
        await client.post("/v1/jobs/batch-disable", json={"ids": [made[0]["id"]]})
        await client.delete(f"/v1/jobs/{made[4]['id']}")

        async def ids(**params: object) -> list[str]:
            page = (await client.get("/v1/jobs", params={"group": group, **params})).json()
            return [job["slug"] for job in page["data"]]

        slugs = [job["slug"] for job in made]
        assert await ids() == slugs[3::-1]  # newest first, the deleted one left out
        assert await ids(enabled="false") == [slugs[0]]
        assert await ids(environment="prod") == [slugs[3], slugs[1]]
        assert await ids(tag=["team:a", "tier:1"]) == [slugs[1]]
        assert await ids(tag="team:b") == [slugs[3]]

        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, object] = {"group": group, "limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/jobs", params=params)).json()
            seen += [job["slug"] for job in page["data"]]
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            cursor = page["next_cursor"]
        assert seen == slugs[3::-1]
        for bad in ({"limit": 0}, {"limit": 1001}, {"tag": "novalue"}, {"cursor": "x"}):
            answer = await client.get("/v1/jobs", params=bad)
            assert 400 <= answer.status_code < 500, bad


async def test_batch_create_answers_each_item_and_clone_copies(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    url = f"{endpoint.base_url}/echo"
    taken = slug("taken")
    async with ready_stack.client() as client:
        assert (await client.post("/v1/jobs", json={"name": "t", "slug": taken,
                                                    "endpoint_url": url})).status_code == 201
        good, twice = slug("b"), slug("b")
        items = [{"name": "ok", "slug": good, "endpoint_url": url, "tags": {"x": "1"},
                  "webhook_secret": "whsec_Y2xvbmUtbWUtc2VjcmV0"},
                 {"name": "bad", "slug": slug("b"), "endpoint_url": url, "max_attempts": 0},
                 {"name": "first", "slug": twice, "endpoint_url": url},
                 {"name": "second", "slug": twice, "endpoint_url": url},
                 {"name": "exists", "slug": taken, "endpoint_url": url}]
        answer = await client.post("/v1/jobs/batch", json=items)
        assert answer.status_code == 200, answer.text
        results = answer.json()
        assert [r["status"] for r in results] == ["created", "rejected", "created",
                                                  "rejected", "rejected"]
        assert results[0]["job"]["slug"] == good
        assert results[1]["error"]["details"][0]["field"] == "max_attempts"
        assert "item 2" in results[3]["error"]["message"]
        assert results[4]["error"]["code"] == "conflict"
        too_many = await client.post("/v1/jobs/batch", json=[items[0]] * 101)
        assert too_many.status_code == 422

        source = results[0]["job"]
        await client.patch(f"/v1/jobs/{good}", json={"timeout_secs": 77})
        copy = await client.post(f"/v1/jobs/{good}/clone", json={"slug": slug("copy")})
        assert copy.status_code == 201, copy.text
        cloned = copy.json()
        assert cloned["version"] == 1 and cloned["id"] != source["id"]
        assert cloned["timeout_secs"] == 77 and cloned["tags"] == {"x": "1"}
        assert cloned["name"] == "ok" and cloned["webhook_secret"] == "********"
        again = await client.post(f"/v1/jobs/{good}/clone",
                                  json={"slug": cloned["slug"], "name": "other"})
        assert again.status_code == 409


async def test_version_policy_pin_and_latest_and_an_incompatible_schema(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        paths = {}
        for policy in ("pin", "latest"):
            job = (await client.post("/v1/jobs", json={
                "name": policy, "slug": slug(policy), "max_concurrency": 1,
                "version_policy": policy,
                "endpoint_url": f"{endpoint.base_url}/slow/1500"})).json()
            first = (await client.post(f"/v1/jobs/{job['id']}/trigger", json={})).json()
            second = (await client.post(f"/v1/jobs/{job['id']}/trigger", json={})).json()
            assert second["status"] == "queued"
            patched = await client.patch(f"/v1/jobs/{job['id']}",
                                         json={"endpoint_url": f"{endpoint.base_url}/echo"})
            assert patched.status_code == 200, patched.text
            await wait_for_status(client, first["id"], {"completed"})
            await wait_for_status(client, second["id"], {"completed"}, timeout=20)
            paths[policy] = endpoint.for_run(second["id"])[0].path
        assert paths == {"pin": "/slow/1500", "latest": "/echo"}

        job = (await client.post("/v1/jobs", json={
            "name": "compat", "slug": slug("compat"), "max_concurrency": 1,
            "version_policy": "latest",
            "endpoint_url": f"{endpoint.base_url}/slow/1500"})).json()
        first = (await client.post(f"/v1/jobs/{job['id']}/trigger", json={})).json()
        old = (await client.post(f"/v1/jobs/{job['id']}/trigger", json={"payload": 1})).json()
        changed = await client.patch(f"/v1/jobs/{job['id']}", json={
            "payload_schema": {"type": "object"}, "backwards_compatible": False})
        assert changed.status_code == 200 and changed.json()["version"] == 2
        new = (await client.post(f"/v1/jobs/{job['id']}/trigger",
                                 json={"payload": {"ok": True}})).json()
        await wait_for_status(client, first["id"], {"completed"})
        failed = await wait_for_status(client, old["id"], {"failed", "completed"})
        assert failed["status"] == "failed", failed
        assert failed["error_detail"]["kind"] == "incompatible_version"
        assert "version 1" in failed["error"]
        assert "version 2" in failed["error"]
        assert endpoint.for_run(old["id"]) == []
        assert (await wait_for_status(client, new["id"], {"completed"}, timeout=20))[
            "job_version"] == 2
