"""kill -9 the executor while 300 runs are in flight at their endpoint, restart it:
every run ends exactly once, and every repeated call of a (run, attempt) the endpoint
saw carried that attempt's Idempotency-Key (so the endpoint could drop the repeat)."""

import asyncio
import sqlite3
import time
import uuid
from collections import Counter, defaultdict

import pytest

from services.domain import TERMINAL
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job

pytestmark = pytest.mark.kafka

RUNS = 300


def _read(database: str, query: str) -> list[tuple[str, ...]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(query).fetchall()


async def test_kill_the_executor_with_300_runs_in_flight(ready_stack: RunningStack,
                                                         endpoint: Endpoint) -> None:
    async with ready_stack.client(timeout=60) as client:
        job = await create_job(client, f"exec-crash-{uuid.uuid4().hex[:6]}",
                               f"{endpoint.base_url}/slow/3000", timeout_secs=20,
                               max_attempts=3, retry_delays_secs=[1])
        limit = asyncio.Semaphore(30)

        async def trigger(i: int) -> str:
            async with limit:
                answer = await client.post(f"/v1/jobs/{job['id']}/trigger",
                                           json={"payload": {"i": i}},
                                           headers={"Prefer": "respond-async"})
                assert answer.status_code == 202, answer.text
                return str(answer.json()["id"])

        run_ids = await asyncio.gather(*(trigger(i) for i in range(RUNS)))
    assert len(set(run_ids)) == RUNS
    wanted = set(run_ids)

    def called() -> int:
        return len({r.headers["X-Run-ID"] for r in endpoint.received
                    if r.headers.get("X-Run-ID") in wanted})

    deadline = time.monotonic() + 60
    while called() < 150 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    in_flight = endpoint.in_flight[job["id"]]
    assert in_flight >= 100, f"only {in_flight} calls in flight at the kill: proves nothing"
    ready_stack.stack["executor"].kill()
    await asyncio.sleep(1.0)
    ready_stack.stack["executor"].start()

    database = str(ready_stack.database_path)
    deadline = time.monotonic() + 180
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = {run_id: status for run_id, status in
                    _read(database, "SELECT id, status FROM runs")}
        if all(statuses.get(r) in TERMINAL for r in run_ids):
            break
        await asyncio.sleep(1.0)
    unfinished = [(r, statuses.get(r)) for r in run_ids if statuses.get(r) not in TERMINAL]
    assert not unfinished, f"{len(unfinished)} unfinished, e.g. {unfinished[:5]}\n" \
                           f"{ready_stack.logs()}"
    assert {statuses[r] for r in run_ids} == {"completed"}

    # Each run ended exactly once.
    ends = Counter(run_id for run_id, kind in _read(
        database, "SELECT run_id, type FROM run_events") if run_id in wanted
        and kind in ("run.completed", "run.failed", "run.crashed", "run.canceled"))
    assert set(ends.values()) == {1} and set(ends) == wanted

    # Calls of one (run, attempt) all carry its key: a repeat is recognisable as one.
    keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    for call in endpoint.received:
        run_id = call.headers.get("X-Run-ID")
        if run_id in wanted:
            keys[(run_id, call.headers["X-Attempt"])].add(call.headers["Idempotency-Key"])
    assert all(found == {f"{run}:{attempt}"} for (run, attempt), found in keys.items())
    repeated = sum(endpoint.calls[r] > 1 for r in run_ids)
    assert repeated > 0, "no attempt was called again: the kill interrupted nothing"
