"""kill -9 the processor and the projector while 500 runs are in flight, restart them:
every run reaches a terminal state exactly once, none is lost, no transition is doubled."""

import asyncio
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from events.codec import decode_event
from events.topics import Topics
from services.domain import TERMINAL
from services.kafka import topic_partitions
from services.processor.gaps import TRIPWIRE
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_ready

pytestmark = pytest.mark.kafka

RUNS = 500
JOBS = 5


async def _trigger(client: httpx.AsyncClient, job_id: str, i: int) -> str:
    response = await client.post(f"/v1/jobs/{job_id}/trigger", json={"payload": {"i": i}})
    # 202 is a correct answer while the projector is down: the run is accepted, not visible.
    assert response.status_code in (201, 202), response.text
    body = response.json()
    return str(body["id"] if response.status_code == 201 else body["location"].split("/")[-1])


def _statuses(database: str) -> dict[str, str]:
    """Status of each run in the read model (read directly, while the API may be down)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        return dict(db.execute("SELECT id, status FROM runs").fetchall())


async def _read_log(stack: RunningStack, topic: str | None = None) -> list[tuple[bytes, bytes]]:
    topic = topic or Topics(stack.prefix).events
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(stack.bootstrap, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for rs in batch.values():
                records.extend((r.key, r.value) for r in rs)
            if all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                break
        return records
    finally:
        await consumer.stop()


def tripwire_firings(stack: RunningStack) -> list[str]:
    """The processor's gap-tripwire log lines: each is a range faust's stream skipped."""
    log = stack.stack["processor"].log_path.read_text(errors="replace")
    return [line for line in log.splitlines() if TRIPWIRE in line]


async def uncommitted_commands(stack: RunningStack, wait: float = 30.0) -> dict[int, int]:
    """Per partition, how far the processor group's committed offset on the commands topic
    stays behind the end, once it has had ``wait`` seconds to catch up (empty: caught up).
    A frozen commit never catches up."""
    topic = Topics(stack.prefix).commands
    tps = await topic_partitions(stack.bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await consumer.start()
    await admin.start()
    try:
        deadline = time.monotonic() + wait
        while True:
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(f"{stack.prefix}-processor",
                                                                partitions=tps)
            behind = {tp.partition: end - max(0, committed[tp].offset if tp in committed
                                              else 0)
                      for tp, end in ends.items()}
            behind = {p: n for p, n in behind.items() if n > 0}
            if not behind or time.monotonic() > deadline:
                return behind
            await asyncio.sleep(1.0)
    finally:
        await admin.close()
        await consumer.stop()


async def test_kill_processor_and_projector_mid_flight(ready_stack: RunningStack,
                                                       endpoint: Endpoint) -> None:
    await crash_mid_flight(ready_stack, endpoint)


async def crash_mid_flight(stack: RunningStack, endpoint: Endpoint,
                           meanwhile: Callable[[], Awaitable[None]] | None = None) -> None:
    """The scenario (also run by test_handover.py with small fetches and buffers);
    ``meanwhile`` runs beside the second half of the triggers, after the restart."""
    async with stack.client(timeout=60) as client:
        jobs = [await create_job(client, f"crash-{n}-{uuid.uuid4().hex[:6]}",
                                 f"{endpoint.base_url}/{'flaky/1' if n % 2 else 'slow/200'}",
                                 max_attempts=3, retry_delays_secs=[1], timeout_secs=5)
                for n in range(JOBS)]
        limit = asyncio.Semaphore(25)

        async def trigger(i: int) -> str:
            async with limit:
                return await _trigger(client, jobs[i % JOBS]["id"], i)

        first = await asyncio.gather(*(trigger(i) for i in range(RUNS // 2)))
        # Runs are now queued, running and waiting for retries: crash both stateful parts.
        before_crash = _statuses(str(stack.database_path))
        in_flight = [r for r in first if before_crash.get(r) not in TERMINAL]
        assert in_flight, "nothing was in flight at the crash: the test would prove nothing"
        stack.stack["processor"].kill()
        stack.stack["projector"].kill()
        rest = asyncio.gather(*(trigger(i) for i in range(RUNS // 2, RUNS)))
        await asyncio.sleep(1.0)
        stack.stack["processor"].start()
        stack.stack["projector"].start()
        if meanwhile is not None:
            await meanwhile()
        run_ids = first + list(await rest)

    assert len(set(run_ids)) == RUNS
    deadline = time.monotonic() + 240
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = _statuses(str(stack.database_path))
        if all(statuses.get(r) in TERMINAL for r in run_ids):
            break
        await asyncio.sleep(1.0)
    missing = [r for r in run_ids if r not in statuses]
    unfinished = [r for r in run_ids if statuses.get(r) not in TERMINAL]
    if missing:
        topics = Topics(stack.prefix)
        where = {name: sum(missing[0].encode() in value
                           for _, value in await _read_log(stack, topic))
                 for name, topic in (("commands", topics.commands), ("events", topics.events),
                                     ("outcomes", topics.outcomes))}
        raise AssertionError(f"{len(missing)} runs lost, e.g. {missing[:3]}; records naming "
                             f"{missing[0]}: {where}\n{stack.logs()}")
    assert not unfinished, (f"{len(unfinished)} runs unfinished: "
                            f"{[(r, statuses.get(r)) for r in unfinished[:5]]}\n{stack.logs()}")
    assert {statuses[r] for r in run_ids} == {"completed"}

    with sqlite3.connect(f"file:{stack.database_path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT job_id, seq, run_id, type FROM run_events "
                          "ORDER BY job_id, seq").fetchall()
    by_job: dict[str, list[int]] = defaultdict(list)
    by_run: dict[str, list[str]] = defaultdict(list)
    for job_id, seq, run_id, type_ in rows:
        by_job[job_id].append(seq)
        if run_id:
            by_run[run_id].append(type_)
    for job_id, seqs in by_job.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"job {job_id}: seqs not gapless"
    for run_id in run_ids:
        types = by_run[run_id]
        assert types.count("run.triggered") == 1, (run_id, types)
        assert types.count("run.completed") == 1, (run_id, types)
        assert types[-1] == "run.completed", (run_id, types)
        # each attempt dispatched once, each retry scheduled once per failed attempt
        assert types.count("run.dispatched") == types.count("run.retry_scheduled") + 1

    # On the log itself a crash may have repeated events, but only identically: the same
    # (job, seq) always carries the same event.
    seen: dict[tuple[str, int], str] = {}
    for _key, value in await _read_log(stack):
        decoded = decode_event(value)
        assert decoded is not None
        env = decoded.envelope
        first_id = seen.setdefault((env.job_id, env.seq), env.event_id)
        assert first_id == env.event_id, f"conflicting events at {env.job_id}#{env.seq}"

    await wait_ready(stack)  # the restarted stack is healthy again
    # faust handed the commands over in order after the restart: the stream skipped no
    # command (the gap guard's read-back never ran) and no partition's commit froze.
    skips = tripwire_firings(stack)
    behind = await uncommitted_commands(stack)
    assert not skips and not behind, (
        f"the stream skipped commands {len(skips)} times; commits stay behind the "
        f"commands' end (partition: records) {behind}\n" + "\n".join(skips))
