"""The processor's batch loop without Kafka: order, coalesced writes to the right changelog
partition, the gap read-back, failures isolated without acking."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest

from events import JobSpec
from services.domain import CreateJob, TriggerRun, encode_command
from services.outcomes import decode_outcome
from services.processor import batching
from services.processor.batching import CommandBatches, ready_batches
from services.processor.handler import process_command
from services.processor.tablewrites import BatchWrites, BufferedTable
from tests.unit.test_processor_handler import NOW, MemorySink, MemoryStore

TOPIC = "t.commands"


@dataclass
class Message:
    topic: str
    partition: int
    offset: int


@dataclass
class Event:
    """What the batch loop reads of a faust event (weak-referenceable, as faust's)."""

    value: bytes
    message: Message


class Table(dict[Any, Any]):
    """What BatchWrites uses of a faust table: its store and its changelog topic."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.data = self
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: name)


class Sink(MemorySink):
    """MemorySink, plus the records handed to the producer directly."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, Any, int | None]] = []  # topic, key, partition

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None) -> Any:
        self.sent.append((topic, key, partition))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_answers(self) -> None:
        pass  # MemorySink.answer records them at once

    def changelog(self, table: str) -> list[tuple[Any, int | None]]:
        return sorted((key, partition) for topic, key, partition in self.sent if topic == table)


class Letters:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, value: bytes) -> None:
        self.sent.append(value)


class Guard:
    """The gap guard's interface: ``skipped`` maps an offset to what was skipped before it."""

    def __init__(self, skipped: dict[int, list[tuple[int, bytes]]] | None = None) -> None:
        self.skipped = skipped or {}

    async def missing(self, partition: int, offset: int) -> list[tuple[int, bytes]]:
        return self.skipped.pop(offset, [])


@dataclass
class Loop:
    store: MemoryStore = field(default_factory=MemoryStore)
    sink: Sink = field(default_factory=Sink)
    writes: BatchWrites = field(default_factory=BatchWrites)
    letters: Letters = field(default_factory=Letters)
    tables: dict[str, Table] = field(default_factory=dict)

    def batches(self, guard: Guard | None = None) -> CommandBatches:
        # MemoryStore writes its dicts; here they are faust-like tables behind BatchWrites.
        for name in ("jobs", "runs", "answers", "keys"):
            self.tables[name] = Table(name)
            setattr(self.store, name, BufferedTable(cast(Any, self.tables[name]), self.writes))
        return CommandBatches(self.store, self.sink, self.writes, cast(Any, guard or Guard()),
                              cast(Any, self.letters))


def create(job_id: str = "j", command_id: str = "c1") -> bytes:
    spec = JobSpec(name="n", slug=f"s-{job_id}", endpoint_url="http://example.com/hook")
    return encode_command(CreateJob(command_id=command_id, project_id="p", job_id=job_id,
                                    issued_at=NOW, spec=spec))


def trigger(command_id: str, run_id: str, job_id: str = "j") -> bytes:
    return encode_command(TriggerRun(command_id=command_id, project_id="p", job_id=job_id,
                                     issued_at=NOW, run_id=run_id, payload={"x": 1}))


def events(*records: tuple[int, bytes]) -> list[Any]:
    """Events of the given (partition, value), offsets counting per partition."""
    offsets: dict[int, int] = {}
    out = []
    for partition, value in records:
        offset = offsets.get(partition, 0)
        offsets[partition] = offset + 1
        out.append(Event(value, Message(TOPIC, partition, offset)))
    return out


async def test_a_batch_stores_what_one_at_a_time_would_with_fewer_writes() -> None:
    commands = [(0, create("j")), (1, create("k", "k1")), (0, trigger("c2", "r1")),
                (1, trigger("k2", "s1", "k")), (0, trigger("c3", "r2")),
                (0, trigger("c2", "r1"))]  # a repeat
    loop = Loop()
    await loop.batches().handle(events(*commands))

    serial = MemoryStore()
    for _, raw in commands:
        await process_command(raw, serial, MemorySink())
    assert dict(loop.tables["jobs"]) == serial.jobs
    assert dict(loop.tables["runs"]) == serial.runs
    assert dict(loop.tables["answers"]) == serial.answers
    # One changelog record per key, in the partition of its job's commands.
    assert loop.sink.changelog("jobs") == [("j", 0), ("k", 1)]
    assert loop.sink.changelog("runs") == [("r1", 0), ("r2", 0), ("s1", 1)]
    assert loop.writes.superseded > 0
    assert [decode_outcome(o).command_id for o in loop.sink.outcomes] == [
        "c1", "k1", "c2", "k2", "c3", "c2"]


async def test_skipped_commands_are_decided_before_the_one_after_them() -> None:
    # The stream delivered the trigger (offset 1) but skipped the job's creation (offset 0).
    loop = Loop()
    delivered: Any = Event(trigger("c2", "r1"), Message(TOPIC, 3, 1))
    await loop.batches(Guard({1: [(0, create())]})).handle([delivered])
    assert [decode_outcome(o).rejected for o in loop.sink.outcomes] == [False, False]
    assert {p for _, p in loop.sink.changelog("answers")} == {3}


async def test_a_batch_that_fails_whole_is_decided_one_command_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = batching.process_commands
    poison = trigger("c3", "r2")

    async def flaky(records: Any, store: Any, sink: Any) -> Any:
        if len(records) > 1 or records[0].value == poison:
            raise RuntimeError("a bug under the handler's own isolation")
        return await real(records, store, sink)

    monkeypatch.setattr(batching, "process_commands", flaky)
    loop = Loop()
    await loop.batches().handle(events((0, create()), (0, trigger("c2", "r1")), (0, poison)))
    assert [decode_outcome(o).command_id for o in loop.sink.outcomes] == ["c1", "c2"]
    assert len(loop.letters.sent) == 1  # the poison alone, dead-lettered
    assert loop.store.get_run("r1") is not None and loop.store.get_run("r2") is None


async def test_state_that_cannot_be_stored_stops_the_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Exited(BaseException):
        pass

    def exit_(code: int) -> None:
        raise Exited(code)

    async def broken(*args: Any) -> Any:
        raise OSError("the producer is gone")

    monkeypatch.setattr(batching.os, "_exit", exit_)
    loop = Loop()
    batches = loop.batches()
    monkeypatch.setattr(loop.sink, "send", broken)
    with pytest.raises(Exited):  # exits rather than returning (the caller would ack)
        await batches.handle(events((0, create())))


class Stream:
    def __init__(self) -> None:
        self.enable_acks = True
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


async def test_batches_hold_what_is_ready_and_never_wait_for_more() -> None:
    stream = Stream()
    batches = ready_batches(cast(Any, stream), 2)
    first = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0.01)
    stream.queue.put_nowait(events((0, b"a"))[0])
    assert len(await asyncio.wait_for(first, 1)) == 1  # alone, at once
    assert stream.enable_acks is False  # acked by the caller once stored
    for value in (b"b", b"c", b"d"):
        stream.queue.put_nowait(Event(value, Message(TOPIC, 0, 0)))
    await asyncio.sleep(0.01)
    assert [e.value for e in await anext(batches)] == [b"b", b"c"]
    assert [e.value for e in await anext(batches)] == [b"d"]
    await batches.aclose()
