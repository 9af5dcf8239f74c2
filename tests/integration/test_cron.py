"""Cron on the real broker: a job on ``* * * * *`` fires one run at the next minute
boundary, and a processor killed (SIGKILL) just as a tick fires still yields exactly one
run for that tick. Each test waits for one real minute boundary (at most 60 s)."""

import asyncio
import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from events.codec import decode_event
from events.types import JobCronTicked
from services.domain.operations.cron_tick import cron_run_id
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status
from tests.integration.test_crash_recovery import _read_log

pytestmark = pytest.mark.kafka

EVERY_MINUTE = "* * * * *"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _cron_job(client: httpx.AsyncClient, endpoint: Endpoint) -> tuple[dict[str, Any],
                                                                             datetime]:
    job = await create_job(client, f"cron-{uuid.uuid4().hex[:8]}", f"{endpoint.base_url}/echo",
                           cron=EVERY_MINUTE, timezone="Europe/Paris")
    tick = _when(job["next_tick_at"])
    now = datetime.now(UTC)
    assert tick.second == 0 and tick.microsecond == 0
    assert timedelta(0) < tick - now <= timedelta(seconds=61), (tick, now)
    return job, tick


async def _sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def _tick_events(stack: RunningStack, job_id: str) -> list[tuple[int, str, Any]]:
    """The job's projected events: (seq, type, data)."""
    with sqlite3.connect(f"file:{stack.database_path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT seq, type, data FROM run_events WHERE job_id = ? "
                          "ORDER BY seq", (job_id,)).fetchall()
    return [(seq, type_, json.loads(data)) for seq, type_, data in rows]


async def test_a_cron_job_fires_one_run_at_the_next_minute_boundary(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        job, tick = await _cron_job(client, endpoint)
        run_id = cron_run_id(job["id"], tick)
        wait = (tick - datetime.now(UTC)).total_seconds() + 30
        run = await wait_for_status(client, run_id, {"completed"}, timeout=wait)
        assert run["triggered_by"] == "cron" and run["job_id"] == job["id"]
        # Fired at the boundary, not before and not long after (the timer looks twice a
        # second; the run waits for the processor and the projector only).
        assert timedelta(0) <= _when(run["created_at"]) - tick < timedelta(seconds=5)
        assert len(endpoint.for_run(run_id)) == 1
        after = (await client.get(f"/v1/jobs/{job['id']}")).json()
        assert _when(after["next_tick_at"]) == tick + timedelta(minutes=1)
    ticked = [data for _, type_, data in _tick_events(ready_stack, job["id"])
              if type_ == "job.cron_ticked"]
    assert len(ticked) == 1
    assert _when(ticked[0]["tick_at"]) == tick and ticked[0]["run_id"] == run_id
    assert ticked[0]["missed"] == 0


async def test_a_processor_killed_as_a_tick_fires_yields_one_run_for_it(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    stack = ready_stack
    async with stack.client(timeout=60) as client:
        job, tick = await _cron_job(client, endpoint)
        # The timer looks twice a second: a quarter second past the boundary its
        # FireCronTick is about to be sent, in flight, or decided but not yet stored.
        await _sleep_until(tick + timedelta(seconds=0.25))
        stack.stack["processor"].kill()
        await asyncio.sleep(1.0)
        stack.stack["processor"].start()
        run_id = cron_run_id(job["id"], tick)
        run = await wait_for_status(client, run_id, {"completed"}, timeout=90)
        assert run["triggered_by"] == "cron"
    assert len(endpoint.for_run(run_id)) == 1
    events = _tick_events(stack, job["id"])
    ticked = [data for _, type_, data in events if type_ == "job.cron_ticked"
              and _when(data["tick_at"]) == tick]
    assert len(ticked) == 1, events
    # On the log itself the crash may have repeated events, but only identically: the
    # tick was decided once (one seq), whatever was written or asked twice.
    ticked_at: set[int] = set()
    triggered_at: set[int] = set()
    for _key, value in await _read_log(stack):
        decoded = decode_event(value)
        if decoded is None or decoded.envelope.job_id != job["id"]:
            continue
        env, event = decoded.envelope, decoded.event
        if isinstance(event, JobCronTicked) and event.tick_at == tick:
            ticked_at.add(env.seq)
        if env.type == "run.triggered" and env.run_id == run_id:
            triggered_at.add(env.seq)
    assert len(ticked_at) == 1 and len(triggered_at) == 1, (ticked_at, triggered_at)
    assert stack.stack["processor"].running
