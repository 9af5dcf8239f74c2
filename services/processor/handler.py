"""One command in, events, dispatch orders and an answer out.

This is the whole body of the processor's stream loop, written against two small ports so
it runs without Kafka in tests: ``StateStore`` (the processor's tables) and ``Sink`` (the
topics it writes).

Crash safety rests on an order: events are durable on the log *before* the state that
follows from them is stored. After a crash the stored state is therefore never ahead of
the log. When it is behind, the command is decided again from the same state at the same
``issued_at`` and yields the very same events (same ids, same seqs), which every consumer
drops as duplicates by (job id, seq).
"""

import logging
from collections.abc import Sequence
from typing import Protocol

import msgspec

from events.codec import encode_event
from events.dispatch import DispatchOrder, encode_dispatch
from events.envelope import Envelope
from events.types import Event, RunDispatched
from services.domain import Aggregate, Command, JobState, RunState, decode_command, handle
from services.domain.commands import FireDueTimers
from services.domain.state import Answer
from services.outcomes import CommandOutcome, encode_outcome

log = logging.getLogger(__name__)


class StateStore(Protocol):
    def get_job(self, job_id: str) -> JobState | None: ...
    def get_run(self, run_id: str) -> RunState | None: ...
    def get_answer(self, command_id: str) -> Answer | None: ...
    def put_job(self, job: JobState) -> None: ...
    def put_run(self, run: RunState) -> None: ...
    def put_answer(self, command_id: str, answer: Answer) -> None: ...


class Sink(Protocol):
    async def append(self, events: Sequence[tuple[str, bytes]],
                     orders: Sequence[tuple[str, bytes]]) -> None:
        """Write (key, value) records to the events and dispatch topics; return once the
        broker has acknowledged all of them."""

    def answer(self, key: str, value: bytes) -> None:
        """Send a command's outcome; fire and forget (the caller may time out and retry)."""


def load(store: StateStore, command: Command) -> Aggregate:
    """The job's state plus the runs this command's decision can touch."""
    job = store.get_job(command.job_id) or JobState(job_id=command.job_id,
                                                    project_id=command.project_id)
    wanted = set(job.queued[: job.spec.max_concurrency or None] if job.spec else ())
    if run_id := getattr(command, "run_id", None):
        wanted.add(run_id)
    if isinstance(command, FireDueTimers):
        wanted.update(job.delayed)
        wanted.update(job.deadlines)
    runs = {rid: run for rid in wanted if (run := store.get_run(rid)) is not None}
    return Aggregate(job=job, runs=runs)


class StateWrites(msgspec.Struct):
    """What one command changes in the processor's tables, stored only after the log has
    the command's events."""

    jobs: list[JobState] = msgspec.field(default_factory=list)
    runs: list[RunState] = msgspec.field(default_factory=list)
    answers: list[tuple[str, Answer]] = msgspec.field(default_factory=list)

    def apply_to(self, store: StateStore) -> None:
        for job in self.jobs:
            store.put_job(job)
        for run in self.runs:
            store.put_run(run)
        for command_id, answer in self.answers:
            store.put_answer(command_id, answer)


class _Staged:
    """The store as the earlier commands of a batch have left it (nothing written yet)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.jobs: dict[str, JobState] = {}
        self.runs: dict[str, RunState] = {}
        self.answers: dict[str, Answer] = {}

    def get_job(self, job_id: str) -> JobState | None:
        return self.jobs.get(job_id) or self.store.get_job(job_id)

    def get_run(self, run_id: str) -> RunState | None:
        return self.runs.get(run_id) or self.store.get_run(run_id)

    def get_answer(self, command_id: str) -> Answer | None:
        return self.answers.get(command_id) or self.store.get_answer(command_id)

    def put_job(self, job: JobState) -> None:
        self.jobs[job.job_id] = job

    def put_run(self, run: RunState) -> None:
        self.runs[run.run_id] = run

    def put_answer(self, command_id: str, answer: Answer) -> None:
        self.answers[command_id] = answer


async def process_commands(raws: Sequence[bytes], store: StateStore,
                           sink: Sink) -> list[StateWrites]:
    """Decide a batch of commands in order, append all their records, and return each
    command's state writes for the caller to store, in order, now that the log has them.

    Batching lets one broker acknowledgement cover many commands.
    """
    staged = _Staged(store)
    writes: list[StateWrites] = []
    records: list[tuple[str, bytes]] = []
    orders: list[tuple[str, bytes]] = []
    outcomes: list[tuple[str, bytes]] = []
    for raw in raws:
        change = StateWrites()
        writes.append(change)
        try:
            command = decode_command(raw)
        except msgspec.DecodeError as exc:
            log.error("dropping undecodable command: %s", exc)
            continue
        answer = staged.get_answer(command.command_id)
        if answer is None:
            before = load(staged, command)
            decision = handle(before, command)
            answer = decision.answer
            new_records, new_orders = _records(command, before.job.seq, decision.events,
                                               decision.state)
            records += new_records
            orders += new_orders
            if decision.events:
                change.jobs.append(decision.state.job)
                touched = {rid for rid, _ in decision.events if rid is not None}
                change.runs += [decision.state.runs[rid] for rid in sorted(touched)]
            change.answers.append((command.command_id, answer))
            change.apply_to(staged)
        outcome = CommandOutcome(command_id=command.command_id, job_id=command.job_id,
                                 seq=answer.seq, run_id=answer.run_id,
                                 rejected=answer.rejected, code=answer.code,
                                 reason=answer.reason)
        outcomes.append((command.job_id, encode_outcome(outcome)))
    await sink.append(records, orders)
    # Answers go out once the events are durable: a caller told "done" can read them.
    for key, value in outcomes:
        sink.answer(key, value)
    return writes


async def process_command(raw: bytes, store: StateStore, sink: Sink) -> None:
    """One command: decide, append, then store the state that follows."""
    for change in await process_commands([raw], store, sink):
        change.apply_to(store)


def _records(
    command: Command,
    seq: int,
    events: Sequence[tuple[str | None, Event]],
    after: Aggregate,
) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    records: list[tuple[str, bytes]] = []
    orders: list[tuple[str, bytes]] = []
    spec = after.job.spec
    for index, (run_id, event) in enumerate(events):
        envelope = Envelope(
            event_id=f"{command.command_id}:{index}",
            type=event.TYPE,
            version=event.VERSION,
            project_id=command.project_id,
            job_id=command.job_id,
            seq=seq + index + 1,
            occurred_at=command.issued_at,
            command_id=command.command_id,
            run_id=run_id,
            correlation_id=getattr(command, "correlation_id", None),
        )
        records.append((command.job_id, encode_event(envelope, event)))
        if isinstance(event, RunDispatched) and run_id is not None and spec is not None:
            run = after.runs[run_id]
            order = DispatchOrder(
                run_id=run_id, job_id=command.job_id, project_id=command.project_id,
                attempt=event.attempt, endpoint_url=event.endpoint_url,
                fallback_endpoint_url=spec.fallback_endpoint_url,
                timeout_secs=run.timeout_secs, payload=run.payload, metadata=run.metadata,
            )
            orders.append((run_id, encode_dispatch(order)))
    return records, orders
