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
from services.domain.commands import FireDueRetries
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
    if isinstance(command, FireDueRetries):
        wanted.update(job.delayed)
    runs = {rid: run for rid in wanted if (run := store.get_run(rid)) is not None}
    return Aggregate(job=job, runs=runs)


async def process_command(raw: bytes, store: StateStore, sink: Sink) -> None:
    try:
        command = decode_command(raw)
    except msgspec.DecodeError as exc:
        log.error("dropping undecodable command: %s", exc)
        return

    answer = store.get_answer(command.command_id)
    if answer is None:
        before = load(store, command)
        decision = handle(before, command)
        answer = decision.answer
        records, orders = _records(command, before.job.seq, decision.events, decision.state)
        await sink.append(records, orders)
        # Only now, with the events durable, does the state move on.
        if decision.events:
            store.put_job(decision.state.job)
            touched = {rid for rid, _ in decision.events if rid is not None}
            for rid in touched:
                store.put_run(decision.state.runs[rid])
        store.put_answer(command.command_id, answer)

    outcome = CommandOutcome(command_id=command.command_id, job_id=command.job_id,
                             seq=answer.seq, run_id=answer.run_id, rejected=answer.rejected,
                             code=answer.code, reason=answer.reason)
    sink.answer(command.job_id, encode_outcome(outcome))


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
