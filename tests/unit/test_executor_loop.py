"""The executor's loop without Kafka: offset bookkeeping (pure), delivery retries, and the
loop itself over a fake consumer and producer, calling a real loopback endpoint."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from hypothesis import given
from hypothesis import strategies as st

from events.dispatch import DispatchOrder, encode_dispatch
from events.topics import Topics
from services.addresses import parse_networks
from services.deadletter import decode_dead_letter
from services.delivery import Delivery, RecordRefused
from services.domain import ReportAttemptFailed, ReportAttemptSucceeded, decode_command
from services.executor import loop as loop_module
from services.executor.call import close_session, open_session
from services.executor.loop import Executor, RecentOrders
from services.executor.offsets import (
    PartitionProgress,
    decode_ranges,
    encode_ranges,
)
from tests.integration.endpoint import Endpoint

TOPICS = Topics("unit")
TP = TopicPartition(TOPICS.dispatch, 0)
LOOPBACK = parse_networks(["127.0.0.0/8"])


# --- offsets (pure) -------------------------------------------------------------------------


def fetch_all(progress: PartitionProgress, offsets: range) -> list[int]:
    return [o for o in offsets if progress.fetched(o)]


def test_watermark_follows_the_lowest_unfinished_order() -> None:
    progress = PartitionProgress.from_committed(100, None)
    assert fetch_all(progress, range(100, 110)) == list(range(100, 110))
    assert progress.commit_point() is None  # as committed
    for offset in range(101, 110):
        progress.finished(offset)
    # 100 is slow: the watermark waits for it, the rest is in the metadata.
    assert progress.commit_point() == (100, "jl1:101-109")
    progress.finished(100)
    assert progress.commit_point() == (110, "")


def test_ranges_are_the_gaps_between_orders_in_flight() -> None:
    progress = PartitionProgress.from_committed(0, None)
    fetch_all(progress, range(0, 20))
    for offset in range(20):
        if offset not in (3, 7, 8, 15):
            progress.finished(offset)
    assert progress.watermark() == 3
    assert progress.done_above() == [(4, 6), (9, 14), (16, 19)]
    assert progress.commit_point() == (3, "jl1:4-6,9-14,16-19")


def test_offsets_that_do_not_exist_do_not_split_ranges() -> None:
    # Compaction or transaction markers leave holes in the offsets.
    progress = PartitionProgress.from_committed(0, None)
    for offset in (0, 1, 5, 6, 9):
        assert progress.fetched(offset)
    for offset in (1, 5, 6, 9):
        progress.finished(offset)
    assert progress.commit_point() == (0, "jl1:1-9")


def test_a_restart_skips_what_was_done_above_the_watermark() -> None:
    first = PartitionProgress.from_committed(0, None)
    fetch_all(first, range(0, 10))
    for offset in [*range(1, 5), *range(6, 10)]:
        first.finished(offset)
    point = first.commit_point()
    assert point == (0, "jl1:1-4,6-9")

    second = PartitionProgress.from_committed(*point)
    assert second.commit_point() is None  # nothing new to say yet
    assert fetch_all(second, range(0, 12)) == [0, 5, 10, 11]
    # The ranges read back stay in the metadata until the watermark passes them.
    assert (second.watermark(), second.done_above()) == (0, [(1, 4), (6, 9)])
    assert second.commit_point() is None  # so nothing changed
    second.finished(0)
    assert second.commit_point() == (5, "jl1:6-9")
    for offset in (5, 10, 11):
        second.finished(offset)
    assert second.commit_point() == (12, "")


def test_the_watermark_jumps_over_ranges_done_in_an_earlier_life() -> None:
    progress = PartitionProgress.from_committed(10, "jl1:11-20,30")
    assert progress.fetched(10)
    progress.finished(10)
    assert progress.commit_point() == (21, "jl1:30")


def test_an_offset_fetched_twice_is_carried_out_once() -> None:
    progress = PartitionProgress.from_committed(0, None)
    assert progress.fetched(0) and progress.fetched(1)
    assert not progress.fetched(1) and not progress.fetched(0)


def test_a_new_group_starts_where_the_first_record_is() -> None:
    progress = PartitionProgress.from_committed(-1, None)
    assert progress.commit_point() is None
    assert progress.fetched(42)
    assert progress.commit_point() == (42, "")


def test_metadata_is_cut_to_the_limit() -> None:
    ranges = [(n * 10**12, n * 10**12 + 5) for n in range(1, 1000)]
    text = encode_ranges(ranges, max_chars=4000)
    assert len(text) <= 4000
    kept = decode_ranges(text)
    assert kept == ranges[: len(kept)] and 100 < len(kept) < 999
    assert encode_ranges([(1, 2)], max_chars=3) == ""


@pytest.mark.parametrize("metadata", [None, "", "other tool's metadata", "jl1:", "jl1:5-3",
                                      "jl1:1-4,3-9", "jl1:a-b", "jl1:-1", "jl1:1-2-3",
                                      "jl1:" + "9" * 40])
def test_unreadable_metadata_counts_as_none(metadata: str | None) -> None:
    assert decode_ranges(metadata) == []


@given(st.sets(st.integers(0, 199), max_size=60), st.sets(st.integers(0, 199)))
def test_done_above_is_exactly_the_finished_offsets(in_flight: set[int],
                                                    missing: set[int]) -> None:
    existing = [o for o in range(200) if o not in missing]
    progress = PartitionProgress.from_committed(0, None)
    for offset in existing:
        assert progress.fetched(offset)
    for offset in existing:
        if offset not in in_flight:
            progress.finished(offset)
    point = progress.commit_point()
    assert point is not None
    watermark, metadata = point
    unfinished = in_flight & set(existing)
    assert watermark == min(unfinished, default=existing[-1] + 1 if existing else 0)
    covered = {o for a, b in decode_ranges(metadata) for o in range(a, b + 1)}
    # Every finished offset above the watermark is covered, no unfinished one is.
    assert {o for o in existing if o > watermark and o not in unfinished} <= covered
    assert not covered & unfinished
    assert len(decode_ranges(metadata)) <= len(unfinished)


def test_recent_orders_forget_the_oldest() -> None:
    recent = RecentOrders(size=2)
    for key in ("a", "b", "c"):
        recent.add(key)
    assert "a" not in recent and "b" in recent and "c" in recent


# --- delivery -------------------------------------------------------------------------------


class FakeProducer:
    """Acknowledges every record, after failing the first ``faults`` sends like a broker
    that is briefly away; refuses records over ``max_bytes`` as too large."""

    def __init__(self, faults: int = 0, max_bytes: int = 10**9) -> None:
        self.faults, self.max_bytes = faults, max_bytes
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.attempts = 0

    async def send(self, topic: str, value: bytes | None = None,
                   key: bytes | None = None) -> "asyncio.Future[object]":
        self.attempts += 1
        if self.faults > 0:
            self.faults -= 1
            raise KafkaConnectionError("broker away")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if value is not None and len(value) > self.max_bytes:
            future.set_exception(MessageSizeTooLargeError())
        else:
            self.sent.append((topic, value or b"", key))
            future.set_result(None)
        return future

    def on(self, topic: str) -> list[bytes]:
        return [value for t, value, _ in self.sent if t == topic]


async def test_a_passing_broker_fault_is_retried_with_backoff() -> None:
    producer = FakeProducer(faults=3)
    await Delivery(producer, first_backoff=0.01).send("t", b"x", None)
    assert producer.attempts == 4 and producer.on("t") == [b"x"]


async def test_a_record_the_broker_never_takes_is_refused() -> None:
    with pytest.raises(RecordRefused, match="MessageSizeTooLarge"):
        await Delivery(FakeProducer(max_bytes=1)).send("t", b"xx", None)


# --- the loop over fakes --------------------------------------------------------------------


class FakeConsumer:
    def __init__(self) -> None:
        self.queue: list[ConsumerRecord[bytes, bytes]] = []
        self.commits: list[dict[TopicPartition, tuple[int, str]]] = []
        self._paused: set[TopicPartition] = set()
        self.pauses = 0
        self.next_offset = 0

    def add(self, value: bytes, key: bytes = b"k") -> None:
        self.queue.append(ConsumerRecord(TP.topic, TP.partition, self.next_offset, 0, 0, key,
                                         value, None, len(key), len(value), []))
        self.next_offset += 1

    async def getmany(self, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition,
                                                              list[ConsumerRecord[bytes, bytes]]]:
        if TP in self._paused or not self.queue:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        count = max_records or len(self.queue)
        batch, self.queue = self.queue[:count], self.queue[count:]
        return {TP: batch}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *tps: TopicPartition) -> None:
        self.pauses += bool(tps)
        self._paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused -= set(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    async def commit(self, offsets: dict[TopicPartition, tuple[int, str]]) -> None:
        self.commits.append({tp: (o, m) for tp, (o, m) in offsets.items()})

    def last_commit(self) -> tuple[int, str] | None:
        return self.commits[-1][TP] if self.commits else None


class FakeAdmin:
    def __init__(self, committed: dict[TopicPartition, OffsetAndMetadata] | None = None,
                 ) -> None:
        self.committed = committed or {}

    async def list_consumer_group_offsets(self, group_id: str,
                                          partitions: Any = None) -> dict[Any, Any]:
        return dict(self.committed)


def dispatch(endpoint_url: str, run_id: str, attempt: int = 1) -> bytes:
    return encode_dispatch(DispatchOrder(run_id=run_id, job_id=f"job-{run_id}", project_id="p",
                                         attempt=attempt, endpoint_url=endpoint_url,
                                         timeout_secs=10, payload={"run": run_id}))


class Running:
    def __init__(self, consumer: FakeConsumer, producer: FakeProducer, executor: Executor,
                 stop: asyncio.Event, task: "asyncio.Task[None]") -> None:
        self.consumer, self.producer, self.executor = consumer, producer, executor
        self.stop, self.task = stop, task

    def reports(self) -> list[ReportAttemptSucceeded | ReportAttemptFailed]:
        out = []
        for value in self.producer.on(TOPICS.commands):
            command = decode_command(value)
            assert isinstance(command, ReportAttemptSucceeded | ReportAttemptFailed)
            out.append(command)
        return out

    def report_for(self, run_id: str) -> ReportAttemptSucceeded | ReportAttemptFailed:
        (report,) = [r for r in self.reports() if r.run_id == run_id]
        return report

    async def until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            assert not self.task.done(), self.task
            assert asyncio.get_running_loop().time() < deadline, "condition not reached"
            await asyncio.sleep(0.02)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Any]]:
    sessions = []

    async def _start(consumer: FakeConsumer, producer: FakeProducer | None = None,
                     max_in_flight: int = 50, grace_secs: float = 5.0,
                     admin: FakeAdmin | None = None) -> Running:
        producer = producer or FakeProducer()
        session = open_session(LOOPBACK, max_in_flight)
        sessions.append(session)
        executor = Executor(consumer=consumer, delivery=Delivery(producer, first_backoff=0.01),
                            admin=admin or FakeAdmin(), session=session, allowed=LOOPBACK,  # type: ignore[arg-type]
                            topics=TOPICS, group_id="g", max_in_flight=max_in_flight)
        await executor.partitions_assigned({TP})
        stop = asyncio.Event()
        task = asyncio.create_task(executor.run(stop, grace_secs))
        return Running(consumer, producer, executor, stop, task)

    yield _start
    for session in sessions:
        await close_session(session)


async def test_poison_is_isolated_and_the_loop_goes_on(
        server: Endpoint, start: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    real_call = loop_module.call_endpoint

    async def call_with_a_bug(session: Any, order: DispatchOrder, allowed: Any,
                              *rest: Any) -> Any:
        if order.run_id == "bug":
            raise RecursionError("maximum recursion depth exceeded")
        return await real_call(session, order, allowed, *rest)

    monkeypatch.setattr(loop_module, "call_endpoint", call_with_a_bug)
    consumer = FakeConsumer()
    consumer.add(b"\x00 not a dispatch order")
    consumer.add(dispatch(f"{server.base_url}/echo", "before"))
    consumer.add(dispatch("http://127.0.0.1:99999/", "port"))
    consumer.add(dispatch("http://0177.0.0.1:9000/hook", "octal"))
    consumer.add(dispatch(f"{server.base_url}/deep/5000", "deep"))
    consumer.add(dispatch(f"{server.base_url}/echo", "bug"))
    consumer.add(b'{"run_id": 5}')
    consumer.add(dispatch(f"{server.base_url}/echo", "after"))
    running = await start(consumer)
    await running.until(lambda: running.consumer.last_commit() == (8, ""))

    assert isinstance(running.report_for("before"), ReportAttemptSucceeded)
    assert isinstance(running.report_for("after"), ReportAttemptSucceeded)
    expected = {"port": ("refused", "out of range"),
                "octal": ("refused", "write the address as 127.0.0.1"),
                "deep": ("invalid_response", "nested too deep"),
                "bug": ("executor_error", "RecursionError")}
    for run_id, (kind, words) in expected.items():
        report = running.report_for(run_id)
        assert isinstance(report, ReportAttemptFailed)
        assert report.failure.kind == kind and not report.failure.retryable
        assert words in report.failure.message
    letters = [decode_dead_letter(v) for v in running.producer.on(TOPICS.deadletter)]
    assert sorted(letter.offset or 0 for letter in letters) == [0, 2, 3, 5, 6]
    assert all(letter.source == "executor" for letter in letters)
    assert not running.task.done()
    await running.finish()


async def test_a_slow_order_holds_one_slot_not_the_others(
        server: Endpoint, start: Callable[..., Any]) -> None:
    consumer = FakeConsumer()
    consumer.add(dispatch(f"{server.base_url}/slow/1500", "slow"))
    for n in range(5):
        consumer.add(dispatch(f"{server.base_url}/echo", f"fast{n}"))
    running = await start(consumer)
    await running.until(lambda: len(running.reports()) == 5)
    assert "slow" not in {r.run_id for r in running.reports()}
    await running.until(lambda: running.consumer.last_commit() == (0, "jl1:1-5"))
    await running.until(lambda: running.consumer.last_commit() == (6, ""))
    await running.finish()


async def test_fetching_waits_while_every_slot_is_busy(
        server: Endpoint, start: Callable[..., Any]) -> None:
    consumer = FakeConsumer()
    for n in range(6):
        consumer.add(dispatch(f"{server.base_url}/slow/300", f"run{n}"))
    running = await start(consumer, max_in_flight=2)
    most = 0
    while len(running.reports()) < 6:
        most = max(most, len(running.executor.tasks()))
        await asyncio.sleep(0.01)
    assert most == 2 and consumer.pauses > 0
    await running.finish()
    assert consumer.last_commit() == (6, "")


async def test_a_redelivered_order_is_called_once(
        server: Endpoint, start: Callable[..., Any]) -> None:
    consumer = FakeConsumer()
    consumer.add(dispatch(f"{server.base_url}/slow/200", "twice"))
    consumer.add(dispatch(f"{server.base_url}/slow/200", "twice"))  # same run and attempt
    running = await start(consumer)
    await running.until(lambda: running.consumer.last_commit() == (2, ""))
    assert server.calls["twice"] == 1
    consumer.add(dispatch(f"{server.base_url}/slow/200", "twice"))  # after it finished
    await running.until(lambda: running.consumer.last_commit() == (3, ""))
    assert server.calls["twice"] == 1
    await running.finish()


async def test_an_order_is_done_only_once_its_report_is_acknowledged(
        server: Endpoint, start: Callable[..., Any]) -> None:
    consumer = FakeConsumer()
    consumer.add(dispatch(f"{server.base_url}/echo", "one"))
    producer = FakeProducer(faults=5)
    running = await start(consumer, producer)
    await running.until(lambda: running.consumer.last_commit() == (1, ""))
    assert producer.attempts == 6 and len(running.reports()) == 1
    await running.finish()


async def test_a_report_the_broker_refuses_becomes_a_failure(
        server: Endpoint, start: Callable[..., Any]) -> None:
    consumer = FakeConsumer()
    consumer.add(dispatch(f"{server.base_url}/big/200000", "large"))
    running = await start(consumer, FakeProducer(max_bytes=100_000))
    await running.until(lambda: running.consumer.last_commit() == (1, ""))
    report = running.report_for("large")
    assert isinstance(report, ReportAttemptFailed)
    assert report.failure.kind == "executor_error" and "MessageSizeTooLarge" in (
        report.failure.message)
    assert len(running.producer.on(TOPICS.deadletter)) == 1
    await running.finish()


async def test_stopping_cuts_short_what_outlasts_the_grace(
        server: Endpoint, start: Callable[..., Any]) -> None:
    consumer = FakeConsumer()
    consumer.add(dispatch(f"{server.base_url}/echo", "quick"))
    consumer.add(dispatch(f"{server.base_url}/slow/2000", "stuck"))
    consumer.add(dispatch(f"{server.base_url}/echo", "quick2"))
    running = await start(consumer, grace_secs=0.3)
    await running.until(lambda: len(running.reports()) == 2)
    await running.finish()
    # The stuck order is not done: it stays below the watermark, to be called again.
    assert consumer.last_commit() == (1, "jl1:2")
    assert running.executor.tasks() == set()


async def test_orders_done_in_an_earlier_life_are_skipped_and_revocation_commits(
        server: Endpoint, start: Callable[..., Any]) -> None:
    consumer = FakeConsumer()
    for n in range(4):
        consumer.add(dispatch(f"{server.base_url}/echo", f"run{n}"))
    admin = FakeAdmin({TP: OffsetAndMetadata(0, "jl1:1-2")})
    running = await start(consumer, admin=admin)
    await running.until(lambda: consumer.last_commit() == (4, ""))
    assert dict(server.calls) == {"run0": 1, "run3": 1}
    consumer.add(dispatch(f"{server.base_url}/slow/300", "late"))
    await running.until(lambda: len(running.executor.tasks()) == 1)
    await running.executor.partitions_revoked({TP})
    assert consumer.last_commit() == (4, "")  # "late" is not done: it is not committed
    await running.finish()
