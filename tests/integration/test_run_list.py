"""GET /v1/runs, /children and /lineage through the API, on real Kafka: runs made by bulk
triggers, a job's slug as a filter, the error shapes, and keyset paging while new runs
arrive. (Every filter in every order is covered against the projection in
tests/unit/test_run_list.py.)"""

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status

pytestmark = pytest.mark.kafka


async def bulk(client: httpx.AsyncClient, job_id: str,
               items: list[dict[str, Any]]) -> list[str]:
    response = await client.post(f"/v1/jobs/{job_id}/trigger/bulk", json={"items": items})
    assert response.status_code == 201, response.text
    return [r["id"] for r in response.json()["results"]]


async def listed(client: httpx.AsyncClient, **params: Any) -> list[str]:
    """Every run the list gives, page by page (by cursor, 4 at a time)."""
    found: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": 4, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/runs", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        found += [run["id"] for run in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            return found


async def test_filters_sorts_and_both_paginations_through_the_api(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        tag = uuid.uuid4().hex[:8]
        job = await create_job(client, f"list-{tag}", f"{endpoint.base_url}/echo")
        items = [{"payload": {"i": i}, "priority": i % 3,
                  "tags": {"suite": tag, "half": "a" if i < 5 else "b"},
                  "metadata": {"i": str(i)}} for i in range(10)]
        ids = await bulk(client, job["id"], items)
        for run_id in ids:
            await wait_for_status(client, run_id, {"completed"})

        # A bulk's runs share their created_at: the run id breaks the tie.
        assert await listed(client, tag=f"suite:{tag}") == sorted(ids, reverse=True)
        assert await listed(client, tag=f"suite:{tag}", order="asc") == sorted(ids)
        assert set(await listed(client, job=job["slug"], status="completed")) == set(ids)
        assert await listed(client, tag=[f"suite:{tag}", "half:a"], order="asc") == sorted(
            ids[:5])
        assert await listed(client, metadata="i:7") == [ids[7]]
        by_priority = await listed(client, tag=f"suite:{tag}", sort="priority", order="asc")
        assert [items[ids.index(r)]["priority"] for r in by_priority] == sorted(
            i % 3 for i in range(10))
        assert len(await listed(client, tag=f"suite:{tag}", sort="finished_at")) == 10

        # Offset paging gives the same order.
        pages = [(await client.get("/v1/runs", params={
            "tag": f"suite:{tag}", "order": "asc", "limit": 4, "offset": offset})).json()
            for offset in (0, 4, 8)]
        assert [r["id"] for p in pages for r in p["data"]] == sorted(ids)

        # Paging while new runs arrive: each run listed once, none of the first missed.
        seen: list[str] = []
        cursor = None
        while True:
            query = {"tag": f"suite:{tag}", "limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/runs", params=query)).json()
            seen += [r["id"] for r in page["data"]]
            await bulk(client, job["id"], [{"tags": {"suite": tag}}])  # newer runs arrive
            if (cursor := page["next_cursor"]) is None:
                break
        assert len(seen) == len(set(seen)) and set(ids) <= set(seen)


async def test_bad_list_parameters_get_one_error_shape(ready_stack: RunningStack) -> None:
    async with ready_stack.client() as client:
        for params, field in (({"status": "sleeping"}, "status"),
                              ({"tag": "no-colon"}, "tag"),
                              ({"cursor": "not-a-cursor"}, "cursor"),
                              ({"sort": "name"}, "sort"),
                              ({"limit": 5000}, "limit"),
                              ({"cursor": "x", "offset": 3}, "offset")):
            response = await client.get("/v1/runs", params=params)
            assert response.status_code in (400, 422), (params, response.text)
            error = response.json()["error"]
            assert field in {d["field"] for d in error["details"]}, (params, error)
        # A cursor of another order is refused, not misread.
        first = (await client.get("/v1/runs", params={"limit": 1})).json()
        if first["next_cursor"]:
            response = await client.get("/v1/runs", params={
                "limit": 1, "order": "asc", "cursor": first["next_cursor"]})
            assert response.status_code == 422 and "another sort" in response.text


async def test_children_and_lineage(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        tag = uuid.uuid4().hex[:8]
        parent_job = await create_job(client, f"parent-{tag}", f"{endpoint.base_url}/accept")
        child_job = await create_job(client, f"child-{tag}", f"{endpoint.base_url}/echo")
        [parent] = await bulk(client, parent_job["id"], [{}])
        await wait_for_status(client, parent, {"running"})
        call = endpoint.for_run(parent)[0]
        runner = ready_stack.client()
        runner.headers["Authorization"] = f"Bearer {call.headers['X-Run-Token']}"
        async with runner:
            for _ in range(2):
                spawned = await runner.post(f"/v1/runs/{parent}/children",
                                            json={"job_id": child_job["id"], "type": "task"})
                assert spawned.status_code in (200, 201, 202), spawned.text
        children: list[dict[str, Any]] = []
        for _ in range(100):
            children = (await client.get(f"/v1/runs/{parent}/children")).json()["data"]
            if len(children) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(children) == 2 and all(c["parent_run_id"] == parent for c in children)
        lineage = (await client.get(f"/v1/runs/{children[0]['id']}/lineage")).json()
        assert lineage["depth"] == 1 and [a["id"] for a in lineage["ancestors"]] == [parent]
        assert (await client.get("/v1/runs/run_nope/children")).status_code == 404


async def test_health_of_a_scripted_job(ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        tag = uuid.uuid4().hex[:8]
        empty = await create_job(client, f"quiet-{tag}", f"{endpoint.base_url}/echo")
        quiet = (await client.get(f"/v1/jobs/{empty['slug']}/health")).json()
        assert (quiet["health_score"], quiet["total_runs"], quiet["last_run"]) == (-1, 0, None)

        ok = await create_job(client, f"health-{tag}", f"{endpoint.base_url}/echo",
                              max_attempts=1)
        # Runs that end in this order: completed, completed, then (the job's URL changed
        # to one that answers 500, one attempt) failed.
        ended = []
        for _ in range(2):
            [run_id] = await bulk(client, ok["id"], [{}])
            ended.append(await wait_for_status(client, run_id, {"completed"}))
        patched = await client.patch(f"/v1/jobs/{ok['id']}",
                                     json={"endpoint_url": f"{endpoint.base_url}/fail/500"})
        assert patched.status_code in (200, 202), patched.text
        for _ in range(50):  # the next run must see the new URL
            if (await client.get(f"/v1/jobs/{ok['id']}")).json()["endpoint_url"].endswith(
                    "/fail/500"):
                break
            await asyncio.sleep(0.1)
        [failed] = await bulk(client, ok["id"], [{}])
        await wait_for_status(client, failed, {"failed"})

        health = (await client.get(f"/v1/jobs/{ok['slug']}/health",
                                   params={"window": "1h"})).json()
        assert (health["total_runs"], health["completed_runs"], health["failed_runs"]) == (
            3, 2, 1)
        # ok, ok, fail: 2/3 succeeded; one change of outcome in two steps.
        assert abs(health["success_rate"] - 2 / 3) < 1e-9 and health["stability"] == 0.5
        assert health["health_score"] == round(100 * 2 / 3 * (0.7 + 0.3 * 0.5)) == 57
        assert health["failure_streak"] == 1 and health["queue_depth"] == 0
        assert health["last_run"]["id"] == failed
        # All three read and judged; the durations come from the rollups' histograms.
        assert (health["latest_runs"], health["stability_runs"]) == (3, 3)
        assert health["relative_error"] == 0.05 and health["p95_duration_secs"] is not None
        # Caught up: no events behind, none waiting for seconds.
        checks = (await client.get("/readyz")).json()["checks"]
        assert checks["projection_lag"] == 0 and checks["projection_lag_secs"] == 0.0
        bad = await client.get(f"/v1/jobs/{ok['slug']}/health", params={"window": "1y"})
        assert bad.status_code in (400, 422)
        assert bad.json()["error"]["details"][0]["field"] == "window"
        long = await client.get(f"/v1/jobs/{ok['slug']}/health", params={"window": "400d"})
        assert long.json()["window"] == "90d" and long.json()["total_runs"] == 3


async def test_jobs_are_found_by_the_words_of_their_name_and_paged_by_offset(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        word = f"w{uuid.uuid4().hex[:8]}"
        made = [await create_job(client, f"{word}-{i}", f"{endpoint.base_url}/echo")
                for i in range(5)]
        response = await client.get("/v1/jobs", params={"q": word.upper(), "limit": 2,
                                                         "offset": 2})
        assert response.status_code == 200, response.text
        newest_first = [job["id"] for job in reversed(made)]
        assert [job["id"] for job in response.json()["data"]] == newest_first[2:4]
        found = (await client.get("/v1/jobs", params={"q": f"{word} 3"})).json()["data"]
        assert [job["slug"] for job in found] == [f"{word}-3"]

        for params, field in (({"q": "--"}, "q"), ({"offset": 1, "cursor": "x"}, "offset")):
            refused = await client.get("/v1/jobs", params=params)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["details"][0]["field"] == field


async def test_each_exact_filter_time_bound_and_sort_through_the_api(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        tag = uuid.uuid4().hex[:8]
        job = await create_job(client, f"each-{tag}", f"{endpoint.base_url}/echo")
        singles: list[dict[str, Any]] = []
        for i in range(3):
            response = await client.post(f"/v1/jobs/{job['id']}/trigger", json={
                "tags": {"suite": tag}, "concurrency_key": f"ck-{tag}-{i}",
                "correlation_id": f"corr-{tag}-{i}", "idempotency_key": f"idem-{tag}-{i}"})
            assert response.status_code in (200, 201, 202), response.text
            singles.append(response.json())
        made = await client.post(f"/v1/jobs/{job['id']}/trigger/bulk",
                                 json={"items": [{"tags": {"suite": tag}}] * 3})
        batch_id, bulk_ids = made.json()["batch_id"], [r["id"] for r in made.json()["results"]]
        ids = [s["id"] for s in singles] + bulk_ids
        runs = {run_id: await wait_for_status(client, run_id, {"completed"}) for run_id in ids}

        for field, i in (("concurrency_key", 1), ("correlation_id", 2),
                         ("idempotency_key", 0)):
            assert await listed(client, **{field: singles[i][field]}) == [ids[i]], field
        assert sorted(await listed(client, batch_id=batch_id)) == sorted(bulk_ids)
        assert set(await listed(client, tag=f"suite:{tag}", triggered_by="api")) == set(ids)
        assert await listed(client, tag=f"suite:{tag}", triggered_by="cron") == []

        # Each time bound is exclusive, and takes any UTC offset.
        for column in ("created_at", "started_at", "finished_at"):
            ordered = sorted(ids, key=lambda r, c=column: (runs[r][c], r))
            middle = runs[ordered[2]][column]
            after = await listed(client, tag=f"suite:{tag}", sort=column, order="asc",
                                 **{column.replace("_at", "_after"): middle})
            assert after == [r for r in ordered if runs[r][column] > middle], column
            before = await listed(client, tag=f"suite:{tag}", sort=column, order="desc",
                                  **{column.replace("_at", "_before"): middle.replace(
                                      "Z", "+00:00")})
            assert before == [r for r in reversed(ordered) if runs[r][column] < middle]

            # Both directions of the sort, by cursor and by offset, agree.
            by_cursor = await listed(client, tag=f"suite:{tag}", sort=column, order="asc")
            assert by_cursor == ordered, column
            pages = [(await client.get("/v1/runs", params={
                "tag": f"suite:{tag}", "sort": column, "order": "desc", "limit": 4,
                "offset": offset})).json()["data"] for offset in (0, 4)]
            assert [r["id"] for p in pages for r in p] == ordered[::-1], column
