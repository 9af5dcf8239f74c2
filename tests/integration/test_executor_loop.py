"""The executor loop (run_executor) on the real broker: a slow endpoint holds one slot, poison
orders fail alone, and a restart calls no finished order again."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from events.dispatch import DispatchOrder, encode_dispatch
from services.config import Settings
from services.deadletter import DeadLetter, decode_dead_letter
from services.domain import ReportAttemptFailed, ReportAttemptSucceeded, decode_command
from services.executor.app import run_executor
from services.kafka import ensure_topics, make_producer
from tests.integration.endpoint import Endpoint

pytestmark = pytest.mark.kafka

Report = ReportAttemptSucceeded | ReportAttemptFailed


@dataclass
class Collected:
    """Every record of one topic, decoded, with when it arrived."""

    reports: dict[str, tuple[float, Report]] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)


async def follow(bootstrap: str, topic: str, into: Collected) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        async for record in consumer:
            assert record.value is not None
            if topic.endswith(".deadletter"):
                into.letters.append(decode_dead_letter(record.value))
                continue
            command = decode_command(record.value)
            assert isinstance(command, ReportAttemptSucceeded | ReportAttemptFailed)
            # A report written twice (a retry) is the same command: keep the first.
            into.reports.setdefault(command.run_id, (time.monotonic(), command))
    finally:
        await consumer.stop()


@dataclass
class Harness:
    settings: Settings
    endpoint: Endpoint
    seen: Collected
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: "asyncio.Task[None] | None" = None

    def start(self) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_executor(self.settings, self.stop))

    async def stop_gracefully(self) -> None:
        assert self.task is not None and not self.task.done()
        self.stop.set()
        await asyncio.wait_for(self.task, 20)

    async def crash(self) -> None:
        assert self.task is not None and not self.task.done()
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    async def send(self, *values: bytes) -> None:
        producer = make_producer(self.settings.kafka_bootstrap)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(self.settings.topics.dispatch, value, key=b"k")
        finally:
            await producer.stop()

    def order(self, run_id: str, path: str | None = None, url: str | None = None) -> bytes:
        return encode_dispatch(DispatchOrder(
            run_id=run_id, job_id=f"job-{run_id}", project_id="p", attempt=1,
            endpoint_url=url or f"{self.endpoint.base_url}{path}", timeout_secs=20,
            payload={"run": run_id}))

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.task is not None and self.task.done():
                raise AssertionError(f"executor ended: {self.task}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}")
            await asyncio.sleep(0.05)

    def report(self, run_id: str) -> Report:
        return self.seen.reports[run_id][1]

    async def committed(self) -> tuple[int, str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        await admin.start()
        try:
            tp = TopicPartition(self.settings.topics.dispatch, 0)
            answer = await admin.list_consumer_group_offsets(
                f"{self.settings.topic_prefix}-executor", partitions=[tp])
        finally:
            await admin.close()
        meta = answer.get(tp)
        return (-1, "") if meta is None else (meta.offset, meta.metadata)


@pytest.fixture
async def harness(kafka_bootstrap: str) -> AsyncIterator[Harness]:
    # One partition: every order in one line, so the slow one sits below the fast ones.
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}",
                        partitions=1, allowed_networks=("127.0.0.0/8",),
                        executor_max_in_flight=20, executor_stop_grace_secs=10)
    await ensure_topics(kafka_bootstrap, settings.topics, settings.partitions)
    endpoint = Endpoint()
    await endpoint.start()
    seen = Collected()
    followers = [asyncio.create_task(follow(kafka_bootstrap, topic, seen))
                 for topic in (settings.topics.commands, settings.topics.deadletter)]
    running = Harness(settings, endpoint, seen)
    yield running
    if running.task is not None and not running.task.done():
        running.task.cancel()
        await asyncio.gather(running.task, return_exceptions=True)
    for task in followers:
        task.cancel()
    await asyncio.gather(*followers, return_exceptions=True)
    await endpoint.stop()


FAST = [f"fast{n}" for n in range(5)]


async def test_slow_poison_and_restart(harness: Harness) -> None:
    await harness.send(
        harness.order("slow", "/slow/4000"),
        *(harness.order(run_id, "/echo") for run_id in FAST),
        b"\xff\x00 not a dispatch order",
        harness.order("port", url="http://127.0.0.1:99999/"),
        harness.order("octal", url="http://0177.0.0.1:9000/hook"),
        harness.order("deep", "/deep/5000"),
    )
    harness.start()
    bad = ["port", "octal", "deep"]
    await harness.until(lambda: all(r in harness.seen.reports for r in FAST + bad),
                        "the fast and the bad orders reported")
    # The fast ones did not wait for the slow one.
    assert "slow" not in harness.seen.reports
    await harness.until(lambda: "slow" in harness.seen.reports, "the slow order reported")
    slow_at = harness.seen.reports["slow"][0]
    assert all(harness.seen.reports[r][0] < slow_at for r in FAST)
    assert all(isinstance(harness.report(r), ReportAttemptSucceeded) for r in [*FAST, "slow"])

    expected = {"port": ("refused", "out of range"),
                "octal": ("refused", "write the address as 127.0.0.1"),
                "deep": ("invalid_response", "nested too deep")}
    for run_id, (kind, words) in expected.items():
        report = harness.report(run_id)
        assert isinstance(report, ReportAttemptFailed), report
        assert report.failure.kind == kind and not report.failure.retryable
        assert words in report.failure.message
    await harness.until(lambda: any(letter.offset == 6 for letter in harness.seen.letters),
                        "the unreadable order dead-lettered")
    unreadable = next(letter for letter in harness.seen.letters if letter.offset == 6)
    assert unreadable.source == "executor" and unreadable.value is not None
    assert harness.task is not None and not harness.task.done()  # still the same loop

    # Stopped and started again with the same group: nothing finished is called again
    # (a new order after the restart proves the new loop has read past the old ones).
    await harness.stop_gracefully()
    assert await harness.committed() == (10, "")
    harness.start()
    await harness.send(harness.order("probe", "/echo"))
    await harness.until(lambda: "probe" in harness.seen.reports, "the probe reported")
    await harness.stop_gracefully()
    assert dict(harness.endpoint.calls) == {run_id: 1 for run_id in
                                            [*FAST, "slow", "deep", "probe"]}


async def test_a_crash_does_not_repeat_orders_finished_above_a_slow_one(
        harness: Harness) -> None:
    await harness.send(harness.order("slow", "/slow/3000"),
                       *(harness.order(run_id, "/echo") for run_id in FAST))
    harness.start()
    await harness.until(lambda: all(r in harness.seen.reports for r in FAST),
                        "the fast orders reported")
    # The slow order (offset 0) holds the watermark; the fast ones are in the metadata.
    deadline = time.monotonic() + 5
    while await harness.committed() != (0, "jl1:1-5"):
        assert time.monotonic() < deadline, await harness.committed()
        await asyncio.sleep(0.1)
    assert "slow" not in harness.seen.reports

    await harness.crash()  # the slow call is cut short and nothing more is committed
    harness.start()
    await harness.send(harness.order("probe", "/echo"))
    await harness.until(lambda: {"probe", "slow"} <= harness.seen.reports.keys(),
                        "the probe and the slow order reported")
    await harness.stop_gracefully()
    # The unfinished slow order was called again; no finished one was.
    assert harness.endpoint.calls["slow"] == 2
    assert all(harness.endpoint.calls[r] == 1 for r in [*FAST, "probe"]), harness.endpoint.calls
    assert await harness.committed() == (7, "")
