"""The whole stack on PostgreSQL, on real Kafka: the four services started with
JOBLEDGER_DATABASE_URL naming a fresh PostgreSQL database create the schema there, and runs
are triggered, executed, listed and scored from it, their metrics read and their events
streamed live. (The projection and query code is covered on both stores by the unit suite;
this proves the services run on PostgreSQL.)

The metrics and stream tests are test_metrics's and test_streams's own scenarios, run
against this module's stack rather than copied: the same assertions, on PostgreSQL. The
metrics scenario counts every run of its project, so it runs in the project of the stack's
``other`` key, where nothing else in this module triggers a run (the rest trigger in the
admin key's project).
"""

import dataclasses
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.integration import test_metrics as metric_scenarios
from tests.integration import test_streams as stream_scenarios
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import (
    RunningStack,
    create_job,
    start_stack,
    stopped_after,
    wait_for_status,
    wait_ready,
)
from tests.stores import asyncpg_url, dsn, empty_database

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
async def pg_database(postgresql_url: str) -> AsyncIterator[str]:
    """An empty database of its own (no schema: the services make it)."""
    async with empty_database(postgresql_url, "jl_stack") as url:
        yield url


@pytest.fixture(scope="module")
def pg_stack(kafka_bootstrap: str, pg_database: str, tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    home: Path = tmp_path_factory.mktemp("pgstack")
    with stopped_after(start_stack(kafka_bootstrap, home, database_url=pg_database),
                       request) as running:
        yield running


@pytest.fixture(scope="module")
async def ready_pg_stack(pg_stack: RunningStack) -> RunningStack:
    await wait_ready(pg_stack)
    return pg_stack


async def test_runs_are_triggered_listed_and_scored_from_postgresql(
        pg_stack: RunningStack, pg_database: str, endpoint: Endpoint) -> None:
    await wait_ready(pg_stack)
    async with pg_stack.client() as client:
        job = await create_job(client, "on-pg", f"{endpoint.base_url}/echo")
        # The longest metadata value, 4 kB of UTF-8 that does not compress: more than a
        # PostgreSQL index entry holds, were the labels keyed by the value.
        rng = random.Random(7)
        long_value = "".join(chr(rng.randrange(0x20000, 0x2A6D0)) for _ in range(1024))
        ids = []
        for i in range(3):
            response = await client.post(f"/v1/jobs/{job['id']}/trigger", json={
                "payload": {"i": i}, "tags": {"store": "pg"},
                "metadata": {"i": str(i), "blob": long_value}})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        for run_id in ids:
            run = await wait_for_status(client, run_id, {"completed"})
            assert run["metadata"]["blob"] == long_value

        page = (await client.get("/v1/runs", params={
            "job": job["slug"], "tag": "store:pg", "order": "asc", "limit": 2})).json()
        assert [r["id"] for r in page["data"]] == ids[:2] and page["has_more"]  # as made
        rest = (await client.get("/v1/runs", params={
            "job": job["slug"], "tag": "store:pg", "order": "asc", "limit": 2,
            "cursor": page["next_cursor"]})).json()
        assert [r["id"] for r in rest["data"]] == ids[2:] and not rest["has_more"]
        found = (await client.get("/v1/runs", params={"metadata": f"blob:{long_value}",
                                                      "status": "completed"})).json()
        assert {r["id"] for r in found["data"]} == set(ids)

        health = await client.get(f"/v1/jobs/{job['id']}/health")
        assert health.status_code == 200, health.text
        body = health.json()
        assert (body["health_score"], body["success_rate"], body["failure_streak"]) == (
            100, 1.0, 0), body
        # The job's metrics: its three runs, all completed.
        found = await metric_scenarios.metrics(client, job=job["slug"], window="1h",
                                               bucket="1m")
        assert found["job_id"] == job["id"] and found["started"] == 3, found
        assert found["ended"] == {**dict.fromkeys(metric_scenarios.ENDED, 0),
                                  "completed": 3}, found
        assert found["success_rate"] == 1.0, found

        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        # The projector applied every event: none failed on PostgreSQL and was passed over.
        assert ready.json()["checks"]["poisoned_records"] == 0, ready.text

        # Text PostgreSQL cannot hold (a NUL) in an id or a filter matches nothing, as on
        # SQLite: never a 500.
        missing = await client.get("/v1/runs/a%00b")
        assert missing.status_code == 404, missing.text
        for params in ({"metadata": "i:\x00"}, {"job": "a\x00"}, {"tag": "store:pg\x00"}):
            response = await client.get("/v1/runs", params=params)
            assert response.status_code in (200, 404), (params, response.text)
            assert response.status_code == 404 or response.json()["data"] == [], params

    # The rows are in PostgreSQL (not in a SQLite file beside the stack), and the
    # analytics views answer there.
    assert not pg_stack.database_path.exists()
    url = asyncpg_url(pg_database)
    conn = await asyncpg.connect(dsn(url, url.database or ""))
    try:
        statuses = await conn.fetch("SELECT run_id, status FROM v1_runs WHERE job_id = $1",
                                    job["id"])
        assert {(r["run_id"], r["status"]) for r in statuses} == {
            (run_id, "completed") for run_id in ids}
        [daily] = await conn.fetch("SELECT runs, completed FROM v1_job_stats_daily "
                                   "WHERE job_id = $1", job["id"])
        assert (daily["runs"], daily["completed"]) == (3, 3)
    finally:
        await conn.close()


async def test_metrics_of_a_scripted_set_of_runs_on_postgresql(
        ready_pg_stack: RunningStack, endpoint: Endpoint) -> None:
    """test_metrics's scenario (counts by state, success rate, buckets, percentiles against
    the runs it made) in the ``other`` key's project, which holds no runs but its own."""
    in_other_project = dataclasses.replace(ready_pg_stack, admin_key=ready_pg_stack.other_key,
                                           other_key=ready_pg_stack.admin_key)
    async with in_other_project.client() as client:
        before = await metric_scenarios.metrics(client, window="1h", bucket="1m")
        assert before["started"] == 0 and not any(before["ended"].values()), before
    await metric_scenarios.test_metrics_of_a_scripted_set_of_runs(in_other_project, endpoint)


StreamScenario = Callable[[RunningStack, Endpoint], Awaitable[None]]


@pytest.mark.parametrize("scenario", [
    stream_scenarios.test_a_runs_stream_resumes_after_a_dropped_connection_and_ends_with_the_run,
    stream_scenarios.test_the_events_stream_filtered_by_job_and_type_resumes_where_it_dropped,
], ids=["run_stream_to_its_end", "events_stream_resumed"])
async def test_the_live_streams_on_postgresql(ready_pg_stack: RunningStack, endpoint: Endpoint,
                                              scenario: StreamScenario) -> None:
    """A run's stream read to its terminal event (resumed with Last-Event-ID on the way),
    and the project's stream dropped and resumed with Last-Event-ID: test_streams's
    scenarios, with every event read from PostgreSQL's run_events."""
    await scenario(ready_pg_stack, endpoint)
