"""Schemathesis against the served OpenAPI document, with the admin key and every check;
then the service still works.

The run's options are in schemathesis.toml next to this file (deterministic generation,
no example database, the bounded example count, the statuses a rule beyond the schema
allows) and its hooks in schemathesis_hooks.py.

No request of schemathesis's may make the service call an address outside loopback. The
stack allows only loopback endpoints, so a generated private or public address is
refused at creation; a generated host *name* would be resolved and called by the
executor, so the executor is stopped for the whole run, every run schemathesis left
behind is canceled, and the executor's consumer group is moved past every dispatch order
written meanwhile before it starts again: it is never handed one of them (checked).
"""

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from events import Topics, decode_dispatch
from services.kafka import topic_partitions
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import (
    RunningStack,
    create_job,
    service_pids,
    wait_for_status,
)

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
RUN_TIMEOUT_SECS = 150  # it takes about 25 s
# Above the API's read-your-writes bound (10 s): a slow command answers 202, not a timeout.
REQUEST_TIMEOUT_SECS = 20
ACTIVE = ("queued", "delayed", "running")
STAYING = ("processor", "projector", "api")


def schemathesis_command(stack: RunningStack) -> list[str]:
    return [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
        f"{stack.base_url}/docs/openapi.json",
        "--checks", "all",
        "-H", f"Authorization: Bearer {stack.admin_key}",
        "--request-timeout", str(REQUEST_TIMEOUT_SECS),
        "--workers", "1",
        "--no-color",
    ]


def run_schemathesis(stack: RunningStack) -> tuple[int | None, str]:
    """Its exit code (None if it ran out of time) and its output."""
    try:
        result = subprocess.run(schemathesis_command(stack), cwd=ROOT, env=dict(os.environ),
                                capture_output=True, text=True, timeout=RUN_TIMEOUT_SECS,
                                check=False)
    except subprocess.TimeoutExpired as exc:
        partial = [part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                   for part in (exc.stdout, exc.stderr)]
        return None, f"(killed after {RUN_TIMEOUT_SECS}s)\n" + "\n".join(partial)
    return result.returncode, f"{result.stdout}\n{result.stderr}"


def _runs(stack: RunningStack, project: str) -> dict[str, str]:
    with sqlite3.connect(f"file:{stack.database_path}?mode=ro", uri=True, timeout=10) as db:
        return dict(db.execute("SELECT id, status FROM runs WHERE project_id = ?",
                               (project,)).fetchall())


async def _projection_lag(stack: RunningStack) -> int:
    async with stack.client() as client:
        response = await client.get("/readyz")
    return int(response.json()["checks"].get("projection_lag", 1))


async def cancel_what_schemathesis_left(stack: RunningStack, timeout: float = 60) -> None:
    """Cancel every run of the default project that could still be dispatched, until none
    is left (a canceled running run ends as canceled, never retried)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    async with stack.client() as client:
        while quiet < 2:  # twice in a row, a second apart: nothing is still on its way
            assert time.monotonic() < deadline, f"runs still active: {_runs(stack, 'default')}"
            active = [r for r, s in _runs(stack, "default").items() if s in ACTIVE]
            for run_id in active:
                response = await client.post(f"/v1/runs/{run_id}/cancel",
                                             json={"reason": "schemathesis is done"})
                # 409: it ended meanwhile, or is already canceling; 503: tried again.
                assert response.status_code in (200, 202, 409, 503), response.text
            quiet = quiet + 1 if not active and await _projection_lag(stack) == 0 else 0
            await asyncio.sleep(1.0)


async def skip_dispatch_orders(stack: RunningStack) -> dict[TopicPartition, int]:
    """Commit the executors' group at the end of the dispatch topic (the group is empty:
    its only member is stopped); the positions committed."""
    topic = Topics(stack.prefix).dispatch
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap,
                                group_id=f"{stack.prefix}-executor",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(stack.bootstrap, topic)
        assert partitions, f"{topic} has no partitions"
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(ends)
        committed = {tp: await consumer.committed(tp) for tp in partitions}
        assert committed == ends, (committed, ends)
        return ends
    finally:
        await consumer.stop()


async def orders_since(stack: RunningStack, starts: dict[TopicPartition, int]) -> list[str]:
    """``project/endpoint_url`` of each dispatch order written after ``starts``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(starts))
        ends = await consumer.end_offsets(list(starts))
        found = []
        for tp, start in starts.items():
            consumer.seek(tp, start)
            while await consumer.position(tp) < ends[tp]:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if record.offset < ends[tp]:
                        order = decode_dispatch(record.value or b"")
                        found.append(f"{order.project_id}/{order.endpoint_url}")
        return found
    finally:
        await consumer.stop()


async def test_schemathesis_passes_every_check_and_the_service_goes_on(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    stack = ready_stack
    before = service_pids(stack, STAYING)
    stack.stack["executor"].stop()

    started = time.monotonic()
    returncode, output = await asyncio.to_thread(run_schemathesis, stack)
    print(f"schemathesis took {time.monotonic() - started:.0f}s\n{output}")
    stopped = [name for name in STAYING if not stack.stack[name].running]
    assert returncode == 0 and not stopped, (
        f"schemathesis exit {returncode}; services that stopped: {stopped}\n{output}")
    # The stateful phase got past creating jobs: it triggered runs of them.
    assert _runs(stack, "default"), "schemathesis never triggered a run"

    await cancel_what_schemathesis_left(stack)
    skipped_to = await skip_dispatch_orders(stack)
    stack.stack["executor"].start()

    # A normal job of another project runs to completion.
    async with stack.client(stack.other_key) as client:
        job = await create_job(client, f"after-st-{uuid.uuid4().hex[:8]}",
                               f"{endpoint.base_url}/echo")
        response = await client.post(f"/v1/jobs/{job['id']}/trigger",
                                     json={"payload": {"after": "schemathesis"}})
        assert response.status_code == 201, response.text
        done = await wait_for_status(client, response.json()["id"], {"completed"},
                                     timeout=60)
    assert done["result"]["echo"] == {"after": "schemathesis"}
    assert service_pids(stack, STAYING) == before, "a process was restarted"
    assert stack.stack["executor"].running
    # The executor was handed nothing but that run.
    assert await orders_since(stack, skipped_to) == [f"other/{endpoint.base_url}/echo"]
