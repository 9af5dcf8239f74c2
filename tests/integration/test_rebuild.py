"""``jobledger projections rebuild`` on real Kafka, with the whole stack serving: varied
data (jobs created, updated, disabled, deleted, tagged; runs completed, failed, canceled,
bulk-triggered with tags and metadata, children of a parent; quotas), then the rebuild
while clients read the API, then:

- every table of the rebuilt generation equals the live one row for row, every column,
  compared while both have applied the same offsets (nothing produced meanwhile);
- the API answered every read during the rebuild and the switch;
- after the switch the old generation is gone (SQLite: its files; PostgreSQL: its tables)
  and a new run becomes visible through the API (which can then only be reading the new
  generation).

Each test runs once on each store: a stack on SQLite, and one on a PostgreSQL database of
its own (generations as schemas there).
"""

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from events.topics import Topics
from projections.generations import Generation
from projections.tables import metadata
from services.kafka import topic_partitions
from tests.integration.endpoint import Endpoint
from tests.integration.rebuild_places import Place, PostgresPlace, SqlitePlace, compared
from tests.integration.stackutil import (
    RunningStack,
    create_job,
    start_stack,
    stopped_after,
    wait_for_status,
    wait_ready,
)
from tests.integration.test_execution import callback, token_of, trigger
from tests.integration.test_run_list import bulk
from tests.stores import empty_database

pytestmark = pytest.mark.kafka


@dataclass
class Served:
    """A stack, and how to read its store's generations from outside."""

    stack: RunningStack
    place: Place
    kind: str  # "sqlite" or "postgresql"


@pytest.fixture(scope="module")
async def pg_database(postgresql_url: str) -> AsyncIterator[str]:
    """An empty database of its own (no schema: the services make it)."""
    async with empty_database(postgresql_url, "jl_rebuild") as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_stack(request: pytest.FixtureRequest, kafka_bootstrap: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp(f"stack-{request.param}")
    if request.param == "sqlite":
        running = start_stack(kafka_bootstrap, home)
        place: Place = SqlitePlace(f"sqlite+aiosqlite:///{running.database_path}",
                                   running.database_path)
    else:
        url = str(request.getfixturevalue("pg_database"))
        running = start_stack(kafka_bootstrap, home, database_url=url)
        place = PostgresPlace(url)
    with stopped_after(running, request):
        yield Served(running, place, request.param)


@pytest.fixture
async def served(store_stack: Served) -> Served:
    await wait_ready(store_stack.stack)
    return store_stack


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = await topic_partitions(bootstrap, topic)
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def wait_caught_up(place: Place, generation: Generation, bootstrap: str, topic: str,
                         timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    ends = await end_offsets(bootstrap, topic)
    while time.monotonic() < deadline:
        stored = await place.offsets(generation, topic)
        if all(stored.get(p, 0) >= end for p, end in ends.items()):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{generation.name} not caught up with {ends}: "
                         f"{await place.offsets(generation, topic)}")


async def make_varied_data(running: RunningStack, endpoint: Endpoint) -> list[str]:
    """Every kind of row the read models keep; returns the run ids made."""
    tag = uuid.uuid4().hex[:8]
    runs: list[str] = []
    async with running.client() as client:
        echo = await create_job(client, f"echo-{tag}", f"{endpoint.base_url}/echo",
                                tags={"team": "data", "tier": "1"})
        failing = await create_job(client, f"fail-{tag}", f"{endpoint.base_url}/fail/400",
                                   max_attempts=1)
        flow = await create_job(client, f"flow-{tag}", f"{endpoint.base_url}/accept",
                                timeout_secs=300)
        step = await create_job(client, f"step-{tag}", f"{endpoint.base_url}/accept",
                                timeout_secs=300)
        spare = await create_job(client, f"spare-{tag}", f"{endpoint.base_url}/echo")
        # Versions, toggles, a deletion, a dependency, quotas.
        assert (await client.patch(f"/v1/jobs/{echo['id']}", json={
            "name": "echo v2", "tags": {"team": "data", "tier": "2"}})).status_code == 200
        assert (await client.post("/v1/jobs/batch-disable", json={
            "ids": [spare["id"]]})).status_code == 200
        assert (await client.post(f"/v1/jobs/{failing['id']}/dependencies", json={
            "depends_on": echo["id"], "condition": "on_failure"})).status_code == 201
        assert (await client.delete(f"/v1/jobs/{spare['id']}")).status_code == 204
        assert (await client.put("/v1/quotas", json={
            "max_queued_runs": 10_000})).status_code == 200
        # Runs in several states, with tags and metadata, in bulk and one by one.
        runs += await bulk(client, echo["id"], [
            {"payload": {"i": i}, "priority": i % 3, "tags": {"suite": tag},
             "metadata": {"i": str(i)}} for i in range(20)])
        runs += await bulk(client, failing["id"], [{"payload": {"i": i}} for i in range(5)])
        # A parent with two children that complete (their counters add up into it); the
        # parent is canceled and acknowledges.
        parent = await trigger(client, flow["id"])
        runs.append(parent["id"])
        parent_token = await token_of(endpoint, parent["id"])
        await wait_for_status(client, parent["id"], {"running"})
        async with callback(running, parent_token) as c:
            for kind in ("export", "import"):
                child = await c.post(f"/v1/runs/{parent['id']}/children",
                                     json={"job_id": step["id"], "type": kind})
                assert child.status_code == 201, child.text
                runs.append(child.json()["id"])
        for child_id in runs[-2:]:
            async with callback(running, await token_of(endpoint, child_id)) as c:
                assert (await c.post(f"/v1/runs/{child_id}/progress",
                                     json={"numSuccess": 3})).status_code == 200
                assert (await c.post(f"/v1/runs/{child_id}/complete",
                                     json={"result": {"rows": 3}})).status_code == 200
        for child_id in runs[-2:]:
            await wait_for_status(client, child_id, {"completed"})
        assert (await client.post(f"/v1/runs/{parent['id']}/cancel")).status_code == 200
        async with callback(running, parent_token) as c:
            assert (await c.post(f"/v1/runs/{parent['id']}/fail",
                                 json={"error": "stopped on request"})).status_code == 200
        for run_id in runs:
            await wait_for_status(client, run_id, {"completed", "failed", "canceled"})
    return runs


async def keep_reading(running: RunningStack, run_ids: list[str], stop: asyncio.Event,
                       answers: list[int]) -> None:
    """What a client does meanwhile: list pages and read runs, noting every status."""
    async with running.client() as client:
        i = 0
        while not stop.is_set():
            try:
                listed = await client.get("/v1/runs", params={"limit": 20})
                one = await client.get(f"/v1/runs/{run_ids[i % len(run_ids)]}")
                answers += [listed.status_code, one.status_code]
            except httpx.TransportError:
                answers.append(-1)
            i += 1
            await asyncio.sleep(0.02)


class Rebuild:
    """``jobledger projections rebuild`` as a user runs it, beside the stack."""

    def __init__(self, served: Served, grace: float) -> None:
        self.running, self.place, self.grace = served.stack, served.place, grace
        self.output: list[str] = []

    async def __aenter__(self) -> "Rebuild":
        env = dict(self.running.stack["projector"].env)
        env["PYTHONPATH"] = os.getcwd()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "projections", "rebuild",
            "--home", str(self.running.database_path.parent), "--grace", str(self.grace),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        return self

    async def switched(self) -> Generation:
        """Wait for the switch; the new live generation."""
        assert self.process.stdout is not None
        while not any(line.startswith("rebuild: switched to") for line in self.output):
            line = (await asyncio.wait_for(self.process.stdout.readline(), 120)).decode()
            assert line, "the rebuild ended before switching:\n" + "".join(self.output)
            self.output.append(line)
        assert any(" records/s now " in line and " behind" in line for line in self.output)
        return await self.place.live()

    async def __aexit__(self, *exc: object) -> None:
        rest, _ = await asyncio.wait_for(self.process.communicate(), 60)
        self.output.append(rest.decode())
        if exc[0] is None:
            assert self.process.returncode == 0, "".join(self.output)


async def assert_same_tables(place: Place, old: Generation,
                             new: Generation) -> dict[str, int]:
    """Every table, every column (less EXCLUDED) equal; the row count of each table."""
    assert await place.names(old) == await place.names(new)
    before, rebuilt = await place.rows(old), await place.rows(new)
    for table, old_rows in before.items():
        new_rows = rebuilt[table]
        assert len(old_rows) == len(new_rows), f"{table}: {len(old_rows)} rows " \
            f"before, {len(new_rows)} rebuilt"
        for was, now in zip(old_rows, new_rows, strict=True):
            columns = compared(metadata.tables[table])
            differ = {c: (a, b) for c, a, b in zip(columns, was, now, strict=True) if a != b}
            assert not differ, f"{table} {was[:2]}: {differ}"
    return {table: len(rows) for table, rows in rebuilt.items()}


# The first rebuild's new generation, on each store.
SECOND = {"sqlite": "jobledger.g2.db", "postgresql": "jobledger_g2"}


async def test_rebuild_while_serving_gives_the_same_tables_and_switches(
        served: Served, endpoint: Endpoint) -> None:
    running, place = served.stack, served.place
    live = await place.live()
    topic = Topics(running.prefix).events
    runs = await make_varied_data(running, endpoint)
    # Nothing is produced from here until the comparison: both stores end at the same
    # offsets. Wait until the live projector has applied everything in the log.
    await wait_caught_up(place, live, running.bootstrap, topic)

    stop, answers = asyncio.Event(), []
    reader = asyncio.create_task(keep_reading(running, runs, stop, answers))
    async with Rebuild(served, grace=10) as rebuild:
        rebuilt = await rebuild.switched()
        assert rebuilt.name == SECOND[served.kind]
        # The old generation is kept for the grace period: compare now (nothing was
        # produced since, so both have applied the same offsets).
        await wait_caught_up(place, rebuilt, running.bootstrap, topic)
        counted = await assert_same_tables(place, live, rebuilt)
    assert counted["runs"] >= len(runs) and counted["run_events"] > 3 * len(runs)
    for name in ("jobs", "job_versions", "job_tags", "run_labels", "dead_letters",
                 "job_dependencies", "project_quotas", "projector_offsets"):
        assert counted[name] > 0, f"no {name} rows: the comparison would prove little"
    left = await place.remains(live)
    assert left == [], f"old generation kept: {left}"

    # The stack carries on in the new generation: a new run is seen through the API.
    async with running.client() as client:
        job = await create_job(client, f"after-{uuid.uuid4().hex[:8]}",
                               f"{endpoint.base_url}/echo")
        run = await trigger(client, job["id"])
        await wait_for_status(client, run["id"], {"completed"})
        assert (await client.get(f"/v1/runs/{runs[0]}")).status_code == 200
    assert await place.status(rebuilt, run["id"]) == "completed"
    stop.set()
    await reader
    assert answers and set(answers) == {200}, (
        f"{sum(a != 200 for a in answers)} of {len(answers)} reads failed: "
        f"{sorted(set(answers))}")


async def test_runs_made_during_a_rebuild_are_neither_lost_nor_doubled(
        served: Served, endpoint: Endpoint) -> None:
    """Runs are triggered before, during and after the switch. Then, with nothing more
    produced, a second rebuild from scratch must equal the generation the first one
    handed over (rebuilt, then carried on by the live projector) row for row."""
    running, place = served.stack, served.place
    topic = Topics(running.prefix).events
    made: list[str] = []
    stop, answers = asyncio.Event(), []

    async def keep_triggering(client: httpx.AsyncClient, job_id: str) -> None:
        while not stop.is_set():
            made.extend(await bulk(client, job_id, [{"tags": {"wave": "1"}}] * 5))
            await asyncio.sleep(0.05)

    async with running.client() as client:
        job = await create_job(client, f"during-{uuid.uuid4().hex[:8]}",
                               f"{endpoint.base_url}/echo")
        writer = asyncio.create_task(keep_triggering(client, job["id"]))
        while len(made) < 20:
            await asyncio.sleep(0.05)
        reader = asyncio.create_task(keep_reading(running, made[:20], stop, answers))
        before = len(made)
        async with Rebuild(served, grace=3) as rebuild:
            handed_over = await rebuild.switched()
            during = len(made)
            await asyncio.sleep(2)  # and on after the switch
        stop.set()
        await writer
        await reader
        assert len(made) > during > before  # made during the replay, and after it
        for run_id in made:
            await wait_for_status(client, run_id, {"completed"})
        listed: list[str] = []
        cursor = None
        while True:
            page = (await client.get("/v1/runs", params={
                "job": job["id"], "limit": 1000, **({"cursor": cursor} if cursor else {})
            })).json()
            listed += [r["id"] for r in page["data"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert sorted(listed) == sorted(made)  # each once: none lost, none doubled
    assert answers and set(answers) == {200}, sorted(set(answers))

    await wait_caught_up(place, handed_over, running.bootstrap, topic)
    async with Rebuild(served, grace=10) as again:
        fresh = await again.switched()
        await wait_caught_up(place, fresh, running.bootstrap, topic)
        counted = await assert_same_tables(place, handed_over, fresh)
    assert counted["runs"] >= len(made)
