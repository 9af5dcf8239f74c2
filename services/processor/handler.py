"""Commands in, events, dispatch orders, dead letters and answers out.

This is the whole body of the processor's stream loop, written against two small ports so
it runs without Kafka in tests: ``StateStore`` (the processor's tables) and ``Sink`` (the
topics it writes).

Crash safety rests on an order: events are durable on the log *before* the state that
follows from them is stored. After a crash the stored state is therefore never ahead of
the log. When it is behind, the command is decided again from the same state at the same
``issued_at`` and yields the very same events (same ids, same seqs), which every consumer
drops as duplicates by (job id, seq).

Poison isolation: everything that can fail for a given command (decoding it, loading and
decoding its state, deciding, evolving, encoding events and state) happens before anything
is written. A command that fails there is answered as rejected (``unprocessable``, with the
error), recorded on the dead-letter topic, and the loop goes on; its state is untouched.
A log write that fails for a passing reason (broker unreachable) is retried with backoff;
one that fails for a reason the same records would meet again is isolated the same way.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import msgspec
from aiokafka.errors import KafkaError

from events.codec import encode_event
from events.dispatch import DispatchOrder, encode_dispatch
from events.envelope import Envelope
from events.types import Event, RunCancelRequested, RunDispatched
from services.deadletter import DeadLetter, dead_letter, encode_dead_letter
from services.domain import (
    Aggregate,
    Command,
    JobState,
    KeyState,
    RunState,
    RunStatus,
    decode_command,
    dispatch_order,
    encode_command,
    handle,
    lane_of,
)
from services.domain.commands import (
    DeleteJob,
    FireDueTimers,
    SweepWaitingRuns,
    TriggerRun,
    TriggerRuns,
    UpdateJob,
)
from services.domain.operations.delete_job import DRAIN_CHUNK
from services.domain.operations.hold import start_room
from services.domain.operations.sweep import SWEEP_CHUNK
from services.domain.pacing import RateCounter
from services.domain.state import Answer, DedupRecord
from services.domain.version_policy import settings_for
from services.outcomes import CommandOutcome, encode_outcome
from services.processor.statecodec import (
    decode_answer,
    decode_dedup,
    decode_job,
    decode_rate,
    encode_state,
)
from services.processor.webhook_orders import webhook_order

log = logging.getLogger(__name__)

Record = tuple[str, bytes]  # key, value
RETRY_FIRST_SECS = 0.1
RETRY_MAX_SECS = 5.0


# The most queued runs one command loads as candidates to start.
MAX_CANDIDATES = 1000
# How many more queued runs a command loads while some may fail as incompatible_version.
INCOMPATIBLE_LOOKAHEAD = 100
# How many more queued runs a command loads past those its rate-key limits may hold.
RATE_KEY_LOOKAHEAD = 100


class StateStore(Protocol):
    def get_job(self, job_id: str) -> JobState | None: ...
    def get_run(self, run_id: str) -> RunState | None: ...
    def get_answer(self, command_id: str) -> Answer | None: ...
    def get_key(self, job_id: str, key: str) -> KeyState | None: ...
    def waiting(self, job_id: str, limit: int, per_key: int | None = None) -> list[str]:
        """The job's first ``limit`` queued runs in dispatch order that may start as far as
        their keys go: at most ``per_key`` minus its running runs from each key."""
    def lane(self, job_id: str, key: str, limit: int) -> list[str]:
        """The first ``limit`` queued runs of one key, in dispatch order."""
    def waiting_born(self, job_id: str, after: int, limit: int) -> list[str]:
        """The first ``limit`` waiting (queued or delayed) runs born after ``after``."""
    def put_job(self, job_id: str, raw: bytes) -> None: ...
    def put_run(self, run: RunState, raw: bytes) -> None: ...
    def put_key(self, key: KeyState, raw: bytes | None) -> None:
        """Store a key record; ``raw`` None deletes it."""
    def put_answer(self, command_id: str, raw: bytes) -> None: ...
    def get_dedup(self, job_id: str, idempotency_key: str) -> DedupRecord | None: ...
    def put_dedup(self, job_id: str, idempotency_key: str, raw: bytes) -> None: ...
    def get_rate(self, job_id: str, name: str, value: str) -> RateCounter | None: ...
    def put_rate(self, job_id: str, name: str, value: str, raw: bytes) -> None: ...


class Sink(Protocol):
    async def append(self, events: Sequence[Record], orders: Sequence[Record],
                     letters: Sequence[bytes], commands: Sequence[Record] = ()) -> None:
        """Write records to the events, dispatch, dead-letter and commands topics; return
        once the broker has acknowledged all of them."""

    def answer(self, key: str, value: bytes) -> None:
        """Send a command's outcome; fire and forget (the caller may time out and retry)."""


class CommandRecord(NamedTuple):
    """A command as read from its topic, with its position (for the dead-letter record)."""

    value: bytes
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


class StateWrites(msgspec.Struct):
    """What one command changes in the processor's tables, already encoded, stored only
    after the log has the command's events."""

    jobs: list[tuple[str, bytes]] = msgspec.field(default_factory=list)
    # The run as well as its encoding: the store indexes it (queue order, timers).
    runs: list[tuple[RunState, bytes]] = msgspec.field(default_factory=list)
    answers: list[tuple[str, bytes]] = msgspec.field(default_factory=list)
    # Key records (None: delete it, the key has nothing queued or running).
    keys: list[tuple[KeyState, bytes | None]] = msgspec.field(default_factory=list)
    # Dedup records: (job id, idempotency key, record).
    dedup: list[tuple[str, str, bytes]] = msgspec.field(default_factory=list)
    # Rate-key counters: (job id, limit name, metadata value, counter).
    rates: list[tuple[str, str, str, bytes]] = msgspec.field(default_factory=list)

    def apply_to(self, store: StateStore) -> None:
        for job_id, raw in self.jobs:
            store.put_job(job_id, raw)
        for key, raw_key in self.keys:
            store.put_key(key, raw_key)
        for run, raw in self.runs:
            store.put_run(run, raw)
        for command_id, raw in self.answers:
            store.put_answer(command_id, raw)
        for job_id, idempotency_key, raw in self.dedup:
            store.put_dedup(job_id, idempotency_key, raw)
        for job_id, name, value, raw in self.rates:
            store.put_rate(job_id, name, value, raw)


class Handled(msgspec.Struct):
    """One command's share of a batch: what to append, store and answer."""

    writes: StateWrites
    events: list[Record] = msgspec.field(default_factory=list)
    orders: list[Record] = msgspec.field(default_factory=list)
    letters: list[DeadLetter] = msgspec.field(default_factory=list)
    outcome: Record | None = None
    # Commands for other streams (follow-ups), keyed by their job id.
    commands: list[Record] = msgspec.field(default_factory=list)


class LogRefused(Exception):
    """The log refused records for a reason that would recur (not a passing fault)."""


def load(store: StateStore, command: Command) -> Aggregate:
    """The job's state plus the runs this command's decision can touch: the runs it names
    and the queued runs that may start once it is decided; and the key records of all
    of them (and of a trigger's key). The index offers only runs whose key has room, so
    what is loaded does not grow with the backlog of a busy key."""
    job = store.get_job(command.job_id) or JobState(job_id=command.job_id,
                                                    project_id=command.project_id)
    named: list[str] = []
    if run_id := getattr(command, "run_id", None):
        named.append(run_id)
    if isinstance(command, FireDueTimers):
        named += command.run_ids
    wanted = set(named)
    per_key = job.spec.max_concurrency_per_key if job.spec is not None else None
    if job.spec is not None and job.queued_count and (job.deleted
                                                      or isinstance(command, DeleteJob)):
        # A deleted job's queued runs are canceled a chunk per command (delete_job.drain),
        # whatever room their keys have: the delete's own chunk, then one per wake-up.
        per_key = None
        wanted.update(store.waiting(job.job_id, DRAIN_CHUNK))
    elif job.spec is not None and job.queued_count:
        limit = job.spec.max_concurrency
        # Room now, plus what this command may free (each named run may end); a run the
        # command requeues is among the named ones.
        room = job.queued_count if limit is None else max(0, limit - job.running_count)
        # No more than the start gates let start: a held job loads no candidates. (An
        # update may open them: it is decided on the new definition.)
        gates = None if isinstance(command, UpdateJob) else start_room(job, command.issued_at)
        if gates is not None:
            room = min(room, gates)
        if job.spec.rate_limit_keys:
            # Runs held by their rate key are skipped, not waited behind: look further
            # for runs of other keys that may take the room.
            room += RATE_KEY_LOOKAHEAD
        if job.compat_floor and job.spec.version_policy == "latest":
            # Queued runs older than the floor fail at dispatch instead of starting, so
            # look further for runs that may take the room they leave.
            room += INCOMPATIBLE_LOOKAHEAD
        wanted.update(store.waiting(job.job_id, min(room + len(named), MAX_CANDIDATES),
                                    per_key))
    sweep_chunk, sweep_more = _sweep_chunk(store, job, command)
    wanted.update(sweep_chunk)
    runs = {rid: run for rid in wanted if (run := store.get_run(rid)) is not None}
    if job.queued_count and per_key is not None:
        # A named run that ends frees a place in its key, which the index counts as full
        # still: the next run of that key is a candidate too.
        freed: dict[str, int] = {}
        for rid in named:
            if (run := runs.get(rid)) is not None and lane_of(run):
                freed[lane_of(run)] = freed.get(lane_of(run), 0) + 1
        for key, count in freed.items():
            for rid in store.lane(job.job_id, key, count):
                if rid not in runs and (run := store.get_run(rid)) is not None:
                    runs[rid] = run
    triggers = _triggers_of(command)
    lanes = {lane_of(run) for run in runs.values()}
    lanes.update(trigger.concurrency_key or "" for trigger in triggers)
    keys = {key: record for key in lanes
            if (record := store.get_key(job.job_id, key)) is not None}
    dedup: dict[str, DedupRecord] = {}
    for trigger in triggers:
        if (idem := trigger.idempotency_key) is not None and idem not in dedup:
            if (found := store.get_dedup(job.job_id, idem)) is not None:
                dedup[idem] = found
    rates: dict[tuple[str, str], RateCounter] = {}
    # The metadata of every run this command may start: the loaded ones and new ones.
    metadata = [run.metadata for run in runs.values()]
    if job.spec is not None:
        metadata += [{**job.spec.default_run_metadata, **trigger.metadata}
                     for trigger in triggers]
    for rate_key in job.spec.rate_limit_keys if job.spec is not None else ():
        for value in {v for m in metadata if (v := m.get(rate_key.name)) is not None}:
            if (counter := store.get_rate(job.job_id, rate_key.name, value)) is not None:
                rates[(rate_key.name, value)] = counter
    return Aggregate(job=job, runs=runs, keys=keys, dedup=dedup, rates=rates,
                     sweep_chunk=sweep_chunk, sweep_more=sweep_more)


def _triggers_of(command: Command) -> list[TriggerRun]:
    """The new runs a command asks for: a trigger's one, a bulk trigger's items."""
    if isinstance(command, TriggerRun):
        return [command]
    if isinstance(command, TriggerRuns):
        return command.items
    return []


def _sweep_chunk(store: StateStore, job: JobState, command: Command) -> tuple[list[str], bool]:
    """The next chunk of a bulk cancel: from the start for the command that begins one,
    from its cursor for every later command while it runs."""
    if isinstance(command, SweepWaitingRuns) and not job.deleted and (
            job.sweep is None or job.sweep.operation_id != command.operation_id):
        after = 0
    elif job.sweep is not None:
        after = job.sweep.cursor
    else:
        return [], False
    found = store.waiting_born(job.job_id, after, SWEEP_CHUNK + 1)
    return found[:SWEEP_CHUNK], len(found) > SWEEP_CHUNK


class _Staged:
    """The store as the earlier commands of a batch have left it (nothing written yet)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.jobs: dict[str, bytes] = {}
        self.runs: dict[str, RunState] = {}
        self.runs_of_job: dict[str, set[str]] = {}
        self.answers: dict[str, bytes] = {}
        self.keys: dict[tuple[str, str], KeyState] = {}
        self.keys_of_job: dict[str, set[str]] = {}
        self.dedup: dict[tuple[str, str], bytes] = {}
        self.rates: dict[tuple[str, str, str], bytes] = {}

    def get_rate(self, job_id: str, name: str, value: str) -> RateCounter | None:
        raw = self.rates.get((job_id, name, value))
        return self.store.get_rate(job_id, name, value) if raw is None else decode_rate(raw)

    def put_rate(self, job_id: str, name: str, value: str, raw: bytes) -> None:
        self.rates[(job_id, name, value)] = raw

    def get_dedup(self, job_id: str, idempotency_key: str) -> DedupRecord | None:
        raw = self.dedup.get((job_id, idempotency_key))
        if raw is None:
            return self.store.get_dedup(job_id, idempotency_key)
        return decode_dedup(raw)

    def put_dedup(self, job_id: str, idempotency_key: str, raw: bytes) -> None:
        self.dedup[(job_id, idempotency_key)] = raw

    def get_job(self, job_id: str) -> JobState | None:
        raw = self.jobs.get(job_id)
        return self.store.get_job(job_id) if raw is None else decode_job(raw)

    def get_run(self, run_id: str) -> RunState | None:
        run = self.runs.get(run_id)
        return self.store.get_run(run_id) if run is None else run

    def get_answer(self, command_id: str) -> Answer | None:
        raw = self.answers.get(command_id)
        return self.store.get_answer(command_id) if raw is None else decode_answer(raw)

    def get_key(self, job_id: str, key: str) -> KeyState | None:
        staged = self.keys.get((job_id, key))
        if staged is None:
            return self.store.get_key(job_id, key)
        return staged if staged.live() else None

    def waiting(self, job_id: str, limit: int, per_key: int | None = None) -> list[str]:
        # The store's order, corrected by what this batch changed: staged runs that left
        # the queue drop out, staged runs that entered it join, keys the batch filled
        # give no more than their room and keys it freed give their next runs.
        moved = self.runs_of_job.get(job_id, set())
        ids = self.store.waiting(job_id, limit + len(moved), per_key)
        for key in self.keys_of_job.get(job_id, set()):
            stored = self.store.get_key(job_id, key)
            freed = (stored.running if stored else 0) - self.keys[(job_id, key)].running
            if freed > 0:
                ids += self.store.lane(job_id, key, freed + len(moved))
        queued = [run for rid in dict.fromkeys(ids)
                  if rid not in moved and (run := self.store.get_run(rid)) is not None]
        queued += [run for rid in moved if (run := self.runs[rid]).status is RunStatus.QUEUED]
        found: list[str] = []
        taken: dict[str, int] = {}
        for run in sorted(queued, key=dispatch_order):
            if len(found) >= limit:
                break
            key = lane_of(run)
            if per_key is not None and key:
                record = self.get_key(job_id, key)
                if (record.running if record else 0) + taken.get(key, 0) >= per_key:
                    continue
                taken[key] = taken.get(key, 0) + 1
            found.append(run.run_id)
        return found

    def waiting_born(self, job_id: str, after: int, limit: int) -> list[str]:
        moved = self.runs_of_job.get(job_id, set())
        found = [(run.born, run.run_id)
                 for rid in self.store.waiting_born(job_id, after, limit + len(moved))
                 if rid not in moved and (run := self.store.get_run(rid)) is not None]
        found += [(run.born, rid) for rid in moved
                  if (run := self.runs[rid]).status in (RunStatus.QUEUED, RunStatus.DELAYED)
                  and run.born > after]
        return [rid for _, rid in sorted(found)[:limit]]

    def lane(self, job_id: str, key: str, limit: int) -> list[str]:
        moved = self.runs_of_job.get(job_id, set())
        queued = [run for rid in self.store.lane(job_id, key, limit + len(moved))
                  if rid not in moved and (run := self.store.get_run(rid)) is not None]
        queued += [run for rid in moved if (run := self.runs[rid]).status is RunStatus.QUEUED
                   and lane_of(run) == key]
        return [run.run_id for run in sorted(queued, key=dispatch_order)[:limit]]

    def put_job(self, job_id: str, raw: bytes) -> None:
        self.jobs[job_id] = raw

    def put_run(self, run: RunState, raw: bytes) -> None:
        self.runs[run.run_id] = run
        self.runs_of_job.setdefault(run.job_id, set()).add(run.run_id)

    def put_key(self, key: KeyState, raw: bytes | None) -> None:
        self.keys[(key.job_id, key.key)] = key
        self.keys_of_job.setdefault(key.job_id, set()).add(key.key)

    def put_answer(self, command_id: str, raw: bytes) -> None:
        self.answers[command_id] = raw


def _outcome(command: Command, answer: Answer) -> Record:
    outcome = CommandOutcome(command_id=command.command_id, job_id=command.job_id,
                             seq=answer.seq, run_id=answer.run_id, rejected=answer.rejected,
                             code=answer.code, reason=answer.reason,
                             idempotency_hit=answer.idempotency_hit, items=answer.items)
    return command.job_id, encode_outcome(outcome)


def _decide(record: CommandRecord, staged: _Staged) -> Handled:
    """Decide one command on the staged state; never raises."""
    try:
        command = decode_command(record.value)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        letter = dead_letter("processor", exc, "dropped: not a command this build reads",
                             value=record.value, topic=record.topic,
                             partition=record.partition, offset=record.offset)
        return Handled(StateWrites(), letters=[letter])
    seq = 0
    try:
        answer = staged.get_answer(command.command_id) if command.awaits_outcome else None
        if answer is not None:  # a repeat: the first answer again, and no effect
            return Handled(StateWrites(), outcome=_outcome(command, answer))
        before = load(staged, command)
        seq = before.job.seq
        decision = handle(before, command)
        events, orders = _records(command, seq, decision.events, decision.state)
        writes = StateWrites()
        if decision.events:
            job = decision.state.job
            writes.jobs.append((job.job_id, encode_state(job)))
            touched = sorted({rid for rid, _ in decision.events if rid is not None})
            writes.runs += [(run, encode_state(run))
                            for run in (decision.state.runs[rid] for rid in touched)]
            lanes = sorted({lane_of(decision.state.runs[rid]) for rid in touched})
            writes.keys += [(key, encode_state(key) if key.live() else None)
                            for key in (decision.state.key(lane) for lane in lanes)]
            writes.dedup += [(job.job_id, idem, encode_state(record))
                             for idem, record in decision.state.dedup.items()
                             if before.dedup.get(idem) != record]
            writes.rates += [(job.job_id, name, value, encode_state(counter))
                             for (name, value), counter in decision.state.rates.items()
                             if before.rates.get((name, value)) != counter]
        outcome = None
        if command.awaits_outcome:
            writes.answers.append((command.command_id, encode_state(decision.answer)))
            outcome = _outcome(command, decision.answer)
        followups = [(c.job_id, encode_command(c)) for c in decision.followups]
        handled = Handled(writes, events, orders, outcome=outcome, commands=followups)
    except Exception as exc:  # poison: this command alone is refused
        letter = dead_letter("processor", exc, "rejected as unprocessable",
                             key=command.job_id, value=record.value, topic=record.topic,
                             partition=record.partition, offset=record.offset)
        handled = _refused(command, seq, exc, letter)
    handled.writes.apply_to(staged)
    return handled


def _refused(command: Command, seq: int, exc: BaseException, letter: DeadLetter) -> Handled:
    reason = f"the processor could not handle this command: {type(exc).__name__}: {exc}"
    answer = Answer(seq=seq, run_id=getattr(command, "run_id", None), rejected=True,
                    code="unprocessable", reason=reason[:500])
    if not command.awaits_outcome:
        return Handled(StateWrites(), letters=[letter])
    writes = StateWrites(answers=[(command.command_id, encode_state(answer))])
    return Handled(writes, letters=[letter], outcome=_outcome(command, answer))


def _transient(exc: BaseException) -> bool:
    """A fault that passes (the broker is briefly away), as opposed to records the log
    will refuse again (too large, invalid)."""
    if isinstance(exc, KafkaError):
        return bool(exc.retriable) or type(exc).__name__ in ("KafkaConnectionError",
                                                             "KafkaTimeoutError")
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


async def _append(sink: Sink, batch: Sequence[Handled]) -> None:
    events = [r for h in batch for r in h.events]
    orders = [r for h in batch for r in h.orders]
    letters = [encode_dead_letter(letter) for h in batch for letter in h.letters]
    commands = [r for h in batch for r in h.commands]
    if not (events or orders or letters or commands):
        return
    delay = RETRY_FIRST_SECS
    while True:
        try:
            await sink.append(events, orders, letters, commands)
            return
        except Exception as exc:
            if not _transient(exc):
                raise LogRefused(f"{type(exc).__name__}: {exc}") from exc
            log.warning("writing to the log failed (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECS)


async def process_commands(records: Sequence[CommandRecord | bytes], store: StateStore,
                           sink: Sink) -> list[StateWrites]:
    """Decide a batch of commands in order, append all their records, and return each
    command's state writes for the caller to store, in order, now that the log has them.

    Batching lets one broker acknowledgement cover many commands.
    """
    batch = [r if isinstance(r, CommandRecord) else CommandRecord(r) for r in records]
    staged = _Staged(store)
    handled = [_decide(record, staged) for record in batch]
    try:
        await _append(sink, handled)
    except LogRefused as exc:
        if len(batch) > 1:
            # Find the command the log refuses: one at a time, each on the state the
            # earlier ones leave (nothing of this batch is stored yet).
            return await _one_by_one(batch, store, sink)
        handled = [_refused_by_log(batch[0], handled[0], exc)]
        await _append(sink, handled)
    # Answers go out once the events are durable: a caller told "done" can read them.
    for h in handled:
        if h.outcome is not None:
            sink.answer(*h.outcome)
    return [h.writes for h in handled]


async def _one_by_one(batch: Sequence[CommandRecord], store: StateStore,
                      sink: Sink) -> list[StateWrites]:
    staged = _Staged(store)
    writes: list[StateWrites] = []
    for record in batch:
        for change in await process_commands([record], staged, sink):
            change.apply_to(staged)
            writes.append(change)
    return writes


def _refused_by_log(record: CommandRecord, handled: Handled, exc: LogRefused) -> Handled:
    command = decode_command(record.value)  # it decoded before, or there were no records
    letter = dead_letter("processor", exc, "rejected: the log refused its records",
                         key=command.job_id, value=record.value, topic=record.topic,
                         partition=record.partition, offset=record.offset)
    return _refused(command, 0, exc, letter)


async def process_command(raw: bytes | CommandRecord, store: StateStore, sink: Sink) -> None:
    """One command: decide, append, then store the state that follows."""
    for change in await process_commands([raw], store, sink):
        change.apply_to(store)


def _records(
    command: Command,
    seq: int,
    events: Sequence[tuple[str | None, Event]],
    after: Aggregate,
) -> tuple[list[Record], list[Record]]:
    records: list[Record] = []
    orders: list[Record] = []
    spec = after.job.spec
    correlation = getattr(command, "correlation_id", None)
    # A bulk trigger's runs each carry their own item's correlation id.
    correlations = ({item.run_id: item.correlation_id for item in command.items}
                    if isinstance(command, TriggerRuns) else {})
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
            correlation_id=correlations.get(run_id, correlation) if run_id else correlation,
        )
        records.append((command.job_id, encode_event(envelope, event)))
        if isinstance(event, RunDispatched) and run_id is not None and spec is not None:
            run = after.runs[run_id]
            order = DispatchOrder(
                run_id=run_id, job_id=command.job_id, project_id=command.project_id,
                attempt=event.attempt, endpoint_url=event.endpoint_url,
                fallback_endpoint_url=(spec.fallback_endpoint_url if event.timeout_secs is None
                                       else event.fallback_endpoint_url),
                timeout_secs=event.timeout_secs or run.timeout_secs, payload=run.payload,
                metadata=run.metadata, debug_mode=run.debug_mode,
                dispatched_at=command.issued_at,
            )
            orders.append((run_id, encode_dispatch(order)))
        elif isinstance(event, RunCancelRequested) and run_id is not None and spec is not None:
            run = after.runs[run_id]
            settings = settings_for(after.job, run)
            notice = DispatchOrder(
                run_id=run_id, job_id=command.job_id, project_id=command.project_id,
                attempt=run.attempt, endpoint_url=settings.endpoint_url,
                timeout_secs=settings.timeout_secs, metadata=run.metadata,
                dispatched_at=command.issued_at, kind="cancel", reason=event.reason)
            orders.append((run_id, encode_dispatch(notice)))
        if run_id is not None and (hook := webhook_order(envelope, event, after)) is not None:
            orders.append((run_id, encode_dispatch(hook)))
    return records, orders
