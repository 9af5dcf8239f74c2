"""The processor's loop body against in-memory ports: ordering, repeats, crash replay."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from events import JobSpec, decode_dispatch, decode_event
from services.deadletter import decode_dead_letter
from services.domain import (
    CreateJob,
    JobState,
    KeyState,
    ReportAttemptSucceeded,
    RunState,
    RunStatus,
    TriggerRun,
    dispatch_order,
    encode_command,
    lane_of,
)
from services.domain.pacing import RateCounter
from services.domain.state import Answer, DedupRecord
from services.outcomes import decode_outcome
from services.processor.handler import CommandRecord, process_command, process_commands
from services.processor.statecodec import (
    decode_answer,
    decode_dedup,
    decode_job,
    decode_key,
    decode_rate,
    decode_run,
    dedup_id,
    key_id,
    rate_id,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryStore:
    """Tables of encoded values, like the processor's faust tables."""

    def __init__(self) -> None:
        self.jobs: dict[str, bytes] = {}
        self.runs: dict[str, bytes] = {}
        self.answers: dict[str, bytes] = {}
        self.keys: dict[str, bytes] = {}

    def get_job(self, job_id: str) -> JobState | None:
        raw = self.jobs.get(job_id)
        return None if raw is None else decode_job(raw)

    def get_run(self, run_id: str) -> RunState | None:
        raw = self.runs.get(run_id)
        return None if raw is None else decode_run(raw)

    def get_answer(self, command_id: str) -> Answer | None:
        raw = self.answers.get(command_id)
        return None if raw is None else decode_answer(raw)

    def put_job(self, job_id: str, raw: bytes) -> None:
        self.jobs[job_id] = raw

    def waiting(self, job_id: str, limit: int, per_key: int | None = None) -> list[str]:
        # The plain reference: every queued run in order, at most a key's room per key.
        runs = [decode_run(raw) for raw in self.runs.values()]
        queued = [r for r in runs if r.job_id == job_id and r.status is RunStatus.QUEUED]
        found: list[str] = []
        taken: dict[str, int] = {}
        for run in sorted(queued, key=dispatch_order):
            key = lane_of(run)
            if per_key is not None and key:
                record = self.get_key(job_id, key)
                if (record.running if record else 0) + taken.get(key, 0) >= per_key:
                    continue
                taken[key] = taken.get(key, 0) + 1
            found.append(run.run_id)
        return found[:limit]

    def waiting_born(self, job_id: str, after: int, limit: int) -> list[str]:
        runs = [decode_run(raw) for raw in self.runs.values()]
        waiting = sorted((r.born, r.run_id) for r in runs if r.job_id == job_id
                         and r.status in (RunStatus.QUEUED, RunStatus.DELAYED)
                         and r.born > after)
        return [run_id for _, run_id in waiting[:limit]]

    def lane(self, job_id: str, key: str, limit: int) -> list[str]:
        runs = [decode_run(raw) for raw in self.runs.values()]
        queued = [r for r in runs if r.job_id == job_id and r.status is RunStatus.QUEUED
                  and lane_of(r) == key]
        return [r.run_id for r in sorted(queued, key=dispatch_order)[:limit]]

    def get_key(self, job_id: str, key: str) -> KeyState | None:
        raw = self.keys.get(key_id(job_id, key))
        return None if raw is None else decode_key(raw)

    def put_key(self, key: KeyState, raw: bytes | None) -> None:
        if raw is None:
            self.keys.pop(key_id(key.job_id, key.key), None)
        else:
            self.keys[key_id(key.job_id, key.key)] = raw

    def put_run(self, run: RunState, raw: bytes) -> None:
        self.runs[run.run_id] = raw

    def put_answer(self, command_id: str, raw: bytes) -> None:
        self.answers[command_id] = raw

    def get_dedup(self, job_id: str, idempotency_key: str) -> DedupRecord | None:
        raw = self.answers.get(dedup_id(job_id, idempotency_key))
        return None if raw is None else decode_dedup(raw)

    def put_dedup(self, job_id: str, idempotency_key: str, raw: bytes) -> None:
        self.answers[dedup_id(job_id, idempotency_key)] = raw

    def get_rate(self, job_id: str, name: str, value: str) -> RateCounter | None:
        raw = self.answers.get(rate_id(job_id, name, value))
        return None if raw is None else decode_rate(raw)

    def put_rate(self, job_id: str, name: str, value: str, raw: bytes) -> None:
        self.answers[rate_id(job_id, name, value)] = raw


class MemorySink:
    """The topics; ``failures`` makes the next appends raise that error first."""

    def __init__(self, *failures: Exception, refuse: bytes | None = None) -> None:
        self.events: list[bytes] = []
        self.orders: list[bytes] = []
        self.letters: list[bytes] = []
        self.outcomes: list[bytes] = []
        self.commands: list[bytes] = []
        self.failures = list(failures)
        self.refuse = refuse  # the broker refuses any event holding these bytes

    async def append(self, events: Sequence[tuple[str, bytes]],
                     orders: Sequence[tuple[str, bytes]], letters: Sequence[bytes],
                     commands: Sequence[tuple[str, bytes]] = ()) -> None:
        if self.failures:
            raise self.failures.pop(0)
        if self.refuse and any(self.refuse in v for _, v in events):
            raise MessageSizeTooLargeError()
        self.events += [v for _, v in events]
        self.orders += [v for _, v in orders]
        self.letters += list(letters)
        self.commands += [v for _, v in commands]

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


async def test_state_is_not_stored_while_the_log_is_away() -> None:
    # A passing fault: the append is retried (nothing rejected) and state waits for it.
    store, sink = MemoryStore(), MemorySink()
    await process_command(create(), store, sink)
    sink.failures = [ConnectionError("broker gone"), KafkaConnectionError()]
    stored_during_failure: list[bool] = []
    original = sink.append

    async def watching_append(*args: Any) -> None:
        stored_during_failure.append(store.get_run("r1") is not None)
        await original(*args)

    sink.append = watching_append  # type: ignore[method-assign]
    await process_command(trigger(), store, sink)
    assert stored_during_failure == [False, False, False]
    assert store.get_run("r1") is not None and not decode_outcome(sink.outcomes[-1]).rejected
    assert sink.letters == []


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


async def test_undecodable_command_is_dropped_to_the_dead_letter_topic() -> None:
    store, sink = MemoryStore(), MemorySink()
    await process_command(CommandRecord(b"{not json", "cmds", 3, 17), store, sink)
    assert sink.events == [] and sink.outcomes == []
    letter = decode_dead_letter(sink.letters[0])
    assert (letter.source, letter.topic, letter.partition, letter.offset) == (
        "processor", "cmds", 3, 17)
    assert letter.value == "{not json" and "DecodeError" in letter.error


def huge_trigger(command_id: str, run_id: str) -> bytes:
    # An integer no msgpack state can hold: the state write would fail after the events.
    return encode_command(TriggerRun(command_id=command_id, project_id="p", job_id="j",
                                     issued_at=NOW, run_id=run_id, payload=2**64))


async def test_a_command_whose_state_cannot_be_stored_is_rejected_alone() -> None:
    store, sink = MemoryStore(), MemorySink()
    writes = await process_commands([create(), trigger("c2", "r1"), huge_trigger("c3", "r2"),
                                     trigger("c4", "r3")], store, sink)
    for change in writes:
        change.apply_to(store)
    outcomes = [decode_outcome(o) for o in sink.outcomes]
    assert [(o.command_id, o.rejected, o.code) for o in outcomes] == [
        ("c1", False, None), ("c2", False, None), ("c3", True, "unprocessable"),
        ("c4", False, None)]
    assert "OverflowError" in (outcomes[2].reason or "")
    # Nothing of c3 is on the log or in the state; the others' seqs stay gapless.
    seqs = [d.envelope.seq for raw in sink.events if (d := decode_event(raw))]
    assert seqs == [1, 2, 3, 4, 5]
    assert store.get_run("r2") is None and store.get_run("r3") is not None
    assert [decode_dead_letter(raw).key for raw in sink.letters] == ["j"]
    # A repeat of the poisoned command gets the same answer and causes nothing.
    await process_command(huge_trigger("c3", "r2"), store, sink)
    assert decode_outcome(sink.outcomes[-1]) == outcomes[2]
    assert len(sink.letters) == 1


async def test_records_the_log_refuses_are_isolated_to_their_command() -> None:
    store, sink = MemoryStore(), MemorySink(refuse=b"too-big")
    big = encode_command(TriggerRun(command_id="c3", project_id="p", job_id="j",
                                    issued_at=NOW, run_id="r2", payload="too-big"))
    writes = await process_commands([create(), trigger("c2", "r1"), big,
                                     trigger("c4", "r3")], store, sink)
    for change in writes:
        change.apply_to(store)
    # The batch failed whole, then one command at a time: only c3 is refused.
    outcomes = [decode_outcome(o) for o in sink.outcomes]
    assert [(o.command_id, o.rejected) for o in outcomes] == [
        ("c1", False), ("c2", False), ("c3", True), ("c4", False)]
    assert outcomes[2].code == "unprocessable"
    assert [d.envelope.seq for raw in sink.events if (d := decode_event(raw))] == [1, 2, 3,
                                                                                  4, 5]
    assert len(sink.letters) == 1 and store.get_run("r2") is None


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
    job = store.get_job("j")
    assert job is not None and job.seq == 5 and set(store.runs) == {"r1", "r2"}


async def test_reports_and_timer_requests_get_no_outcome_and_no_stored_answer() -> None:
    store, sink = MemoryStore(), MemorySink()
    await process_command(create(), store, sink)
    await process_command(trigger(), store, sink)
    report = ReportAttemptSucceeded(command_id="rep", project_id="p", job_id="j",
                                    issued_at=NOW, run_id="r1", attempt=1,
                                    awaits_outcome=False)
    outcomes = len(sink.outcomes)
    await process_command(encode_command(report), store, sink)
    assert len(sink.outcomes) == outcomes and store.get_answer("rep") is None
    assert [d.envelope.type for raw in sink.events if (d := decode_event(raw))][-1] == (
        "run.completed")
    # A repeat is told apart by the run's state: the attempt is over, nothing happens.
    events = len(sink.events)
    await process_command(encode_command(report), store, sink)
    assert len(sink.events) == events and sink.letters == []


async def test_a_deleted_jobs_queued_runs_are_canceled_a_chunk_per_command() -> None:
    from services.domain import DeleteJob, WakeJob
    from services.domain.state import job_due_at
    from services.processor import handler

    store, sink = MemoryStore(), MemorySink()
    spec = JobSpec(name="n", slug="s", endpoint_url="http://example.com/hook",
                   max_concurrency=1)
    await process_command(encode_command(CreateJob(command_id="c1", project_id="p",
                                                   job_id="j", issued_at=NOW, spec=spec)),
                          store, sink)
    for i in range(11):
        await process_command(trigger(f"t{i}", f"r{i}"), store, sink)
    chunk, handler.DRAIN_CHUNK = handler.DRAIN_CHUNK, 4
    try:
        # The delete cancels the first chunk itself; the rest waits for the timer, which
        # finds the job due at once after each chunk, until none is left.
        await process_command(encode_command(DeleteJob(command_id="d", project_id="p",
                                                       job_id="j", issued_at=NOW)),
                              store, sink)
        job = store.get_job("j")
        assert job is not None and job.deleted and job.queued_count == 6  # r0 runs on
        wakes = 0
        while (due := job_due_at(job)) is not None:
            assert due <= NOW and wakes < 5
            wakes += 1
            await process_command(encode_command(WakeJob(
                command_id=f"w{wakes}", project_id="p", job_id="j", issued_at=NOW,
                awaits_outcome=False)), store, sink)
            job = store.get_job("j")
            assert job is not None
    finally:
        handler.DRAIN_CHUNK = chunk
    assert wakes == 2 and job.queued_count == 0 and job.running_count == 1
    canceled = [decode_event(raw) for raw in sink.events[-10:]]
    assert {d.event.reason for d in canceled if d is not None} == {"job deleted"}
    # The running run may finish; nothing else starts.
    orders_before = len(sink.orders)
    await process_command(encode_command(ReportAttemptSucceeded(
        command_id="s", project_id="p", job_id="j", issued_at=NOW, run_id="r0",
        attempt=1)), store, sink)
    assert store.get_run("r0").status is RunStatus.COMPLETED  # type: ignore[union-attr]
    assert len(sink.orders) == orders_before
    await process_command(trigger("t99", "r99"), store, sink)
    assert decode_outcome(sink.outcomes[-1]).code == "not_found"
