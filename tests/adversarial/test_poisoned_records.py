"""Records no API would write, put straight on the topics: each loop refuses or passes
over the record alone, records it on the dead-letter topic, and goes on."""

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from events import DispatchOrder, encode_dispatch
from events.topics import Topics
from services.deadletter import DeadLetter, decode_dead_letter
from services.domain import CreateJob, TriggerRun, encode_command
from services.kafka import make_producer, topic_partitions
from tests.adversarial.support import assert_still_serving, pids, slug
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job

pytestmark = pytest.mark.kafka


async def _letters(stack: RunningStack, wanted: int, timeout: float = 60) -> list[DeadLetter]:
    topic = Topics(stack.prefix).deadletter
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        tps = await topic_partitions(stack.bootstrap, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while len(found) < wanted and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [decode_dead_letter(r.value) for r in records]
        return found
    finally:
        await consumer.stop()


async def test_poisoned_records_on_every_topic_are_isolated(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    before = pids(ready_stack)
    topics = Topics(ready_stack.prefix)
    async with ready_stack.client() as client:
        job = await create_job(client, slug("victim"), f"{endpoint.base_url}/echo")
    now = datetime.now(UTC)
    # A payload the processor's state cannot hold (the API refuses it; a bug might not).
    huge = TriggerRun(command_id=f"cmd_{uuid.uuid4().hex}", project_id="default",
                      job_id=job["id"], issued_at=now, run_id=f"run_{uuid.uuid4().hex}",
                      payload={"n": 2**64})
    schema_job = f"job_{uuid.uuid4().hex}"
    spec = {"name": "x", "slug": slug("poison"), "endpoint_url": "http://127.0.0.1:1/",
            "payload_schema": {"minimum": 2**64}}
    bad_spec = msgspec.json.encode({"type": "job.create", "command_id": "cmd_bad_spec",
                                    "project_id": "default", "job_id": schema_job,
                                    "issued_at": now, "spec": spec})
    assert CreateJob  # the tag "job.create" above is CreateJob's
    order = DispatchOrder(run_id="run_ghost", job_id=job["id"], project_id="default",
                          attempt=1, endpoint_url="http://127.0.0.1:99999/", timeout_secs=5)
    producer = make_producer(ready_stack.bootstrap)
    await producer.start()
    try:
        for value in (b"\xff not json", b'{"type": "job.explode"}', encode_command(huge),
                      bad_spec):
            await producer.send_and_wait(topics.commands, value, key=job["id"].encode())
        for value in (b"{broken", b'{"event_id": 1}'):
            await producer.send_and_wait(topics.events, value, key=job["id"].encode())
        for value in (b"\x00\x01", encode_dispatch(order)):
            await producer.send_and_wait(topics.dispatch, value, key=b"run_ghost")
    finally:
        await producer.stop()

    letters = await _letters(ready_stack, wanted=8)
    by_source = {(letter.source, letter.topic) for letter in letters}
    assert ("processor", topics.commands) in by_source
    assert ("projector", topics.events) in by_source
    assert ("executor", topics.dispatch) in by_source
    processor = [letter for letter in letters if letter.source == "processor"]
    assert any("OverflowError" in letter.error for letter in processor), processor
    assert len(processor) == 4 and len(letters) >= 7
    async with httpx.AsyncClient(base_url=ready_stack.base_url) as anonymous:
        for _ in range(50):
            ready = (await anonymous.get("/readyz")).json()
            if ready["checks"]["poisoned_records"] >= 7:
                break
            await asyncio.sleep(0.2)
        assert ready["checks"]["poisoned_records"] >= 7
    async with ready_stack.client() as client:
        # The poisoned trigger left no run; the job takes triggers as before.
        assert (await client.get(f"/v1/runs/{huge.run_id}")).status_code == 404
        again = await client.post(f"/v1/jobs/{job['id']}/trigger", json={"payload": 1})
        assert again.status_code == 201, again.text
    await assert_still_serving(ready_stack, endpoint, before)
