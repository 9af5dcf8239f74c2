"""The processor's loop body against in-memory ports: ordering, repeats, crash replay."""

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from events import JobSpec, decode_dispatch, decode_event
from services.domain import CreateJob, JobState, RunState, TriggerRun, encode_command
from services.domain.state import Answer
from services.outcomes import decode_outcome
from services.processor.handler import process_command, process_commands

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryStore:
    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.runs: dict[str, RunState] = {}
        self.answers: dict[str, Answer] = {}

    def get_job(self, job_id: str) -> JobState | None:
        return self.jobs.get(job_id)

    def get_run(self, run_id: str) -> RunState | None:
        return self.runs.get(run_id)

    def get_answer(self, command_id: str) -> Answer | None:
        return self.answers.get(command_id)

    def put_job(self, job: JobState) -> None:
        self.jobs[job.job_id] = job

    def put_run(self, run: RunState) -> None:
        self.runs[run.run_id] = run

    def put_answer(self, command_id: str, answer: Answer) -> None:
        self.answers[command_id] = answer


class MemorySink:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[bytes] = []
        self.orders: list[bytes] = []
        self.outcomes: list[bytes] = []
        self.fail = fail

    async def append(self, events: Sequence[tuple[str, bytes]],
                     orders: Sequence[tuple[str, bytes]]) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.events += [v for _, v in events]
        self.orders += [v for _, v in orders]

    def answer(self, key: str, value: bytes) -> None:
        self.outcomes.append(value)


def create() -> bytes:
    spec = JobSpec(name="n", slug="s", endpoint_url="http://example.com/hook")
    return encode_command(CreateJob(command_id="c1", project_id="p", job_id="j",
                                    issued_at=NOW, spec=spec))


def trigger(command_id: str = "c2", run_id: str = "r1") -> bytes:
    return encode_command(TriggerRun(command_id=command_id, project_id="p", job_id="j",
                                     issued_at=NOW, run_id=run_id, payload={"x": 1}))


async def test_trigger_writes_events_dispatch_and_answer() -> None:
    store, sink = MemoryStore(), MemorySink()
    await process_command(create(), store, sink)
    await process_command(trigger(), store, sink)
    decoded = [decode_event(raw) for raw in sink.events]
    assert [(d.envelope.seq, d.envelope.type) for d in decoded if d] == [
        (1, "job.created"), (2, "run.triggered"), (3, "run.dispatched")]
    order = decode_dispatch(sink.orders[0])
    assert (order.run_id, order.attempt, order.payload) == ("r1", 1, {"x": 1})
    outcome = decode_outcome(sink.outcomes[-1])
    assert (outcome.command_id, outcome.seq, outcome.run_id) == ("c2", 3, "r1")


async def test_repeated_command_gets_same_answer_and_no_events() -> None:
    store, sink = MemoryStore(), MemorySink()
    await process_command(create(), store, sink)
    await process_command(trigger(), store, sink)
    await process_command(trigger(), store, sink)
    assert len(sink.events) == 3
    assert decode_outcome(sink.outcomes[-1]) == decode_outcome(sink.outcomes[-2])


async def test_state_is_not_stored_when_the_log_write_fails() -> None:
    store = MemoryStore()
    await process_command(create(), store, MemorySink())
    with pytest.raises(ConnectionError):
        await process_command(trigger(), store, MemorySink(fail=True))
    assert store.get_answer("c2") is None and store.get_run("r1") is None
    assert store.jobs["j"].seq == 1


async def test_replay_after_lost_state_writes_identical_events() -> None:
    # The log got the events but the crash lost the state update: deciding the command
    # again must reproduce the very same records, which consumers then drop by seq.
    store, first, again = MemoryStore(), MemorySink(), MemorySink()
    await process_command(create(), store, first)
    before = (dict(store.jobs), dict(store.runs), dict(store.answers))
    await process_command(trigger(), store, first)
    store.jobs, store.runs, store.answers = before
    await process_command(trigger(), store, again)
    assert again.events == first.events[1:]
    assert again.orders == first.orders


async def test_rejection_is_answered_with_code_and_reason() -> None:
    store, sink = MemoryStore(), MemorySink()
    await process_command(trigger(), store, sink)
    outcome = decode_outcome(sink.outcomes[-1])
    assert outcome.rejected and outcome.code == "not_found" and "job j" in (outcome.reason or "")
    assert sink.events == []


async def test_undecodable_command_is_dropped() -> None:
    store, sink = MemoryStore(), MemorySink()
    await process_command(b"{not json", store, sink)
    assert sink.events == [] and sink.outcomes == []


async def test_a_batch_decides_each_command_on_the_state_the_earlier_ones_left() -> None:
    store, sink = MemoryStore(), MemorySink()
    writes = await process_commands([create(), trigger("c2", "r1"), trigger("c3", "r2"),
                                     trigger("c2", "r1")], store, sink)
    assert store.jobs == {}  # nothing stored until the caller applies the writes
    assert [d.envelope.seq for raw in sink.events if (d := decode_event(raw))] == [1, 2, 3,
                                                                                  4, 5]
    assert [decode_outcome(o).seq for o in sink.outcomes] == [1, 3, 5, 3]
    for change in writes:
        change.apply_to(store)
    assert store.jobs["j"].seq == 5 and set(store.runs) == {"r1", "r2"}
