"""The whole stack on PostgreSQL, on real Kafka: the four services started with
JOBLEDGER_DATABASE_URL naming a fresh PostgreSQL database create the schema there, and runs
are triggered, executed, listed and scored from it. (The projection and query code is
covered on both stores by the unit suite; this proves the services run on PostgreSQL.)"""

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import (
    RunningStack,
    create_job,
    start_stack,
    stopped_after,
    wait_for_status,
    wait_ready,
)
from tests.stores import asyncpg_url, dsn

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
async def pg_database(postgresql_url: str) -> AsyncIterator[str]:
    """An empty database of its own (no schema: the services make it)."""
    url = asyncpg_url(postgresql_url)
    name = f"jl_stack_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn(url, url.database or "postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield url.set(database=name).render_as_string(hide_password=False)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def pg_stack(kafka_bootstrap: str, pg_database: str, tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    home: Path = tmp_path_factory.mktemp("pgstack")
    with stopped_after(start_stack(kafka_bootstrap, home, database_url=pg_database),
                       request) as running:
        yield running


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
