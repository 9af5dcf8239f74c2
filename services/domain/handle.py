"""handle(state, command): decide, apply the events, then the follow-ups: dispatch
whatever queued runs the decision lets start, keep the job's cron schedule on the one it
should have, and record a hold of its runs by a start gate. What the processor calls for
every command."""

from datetime import datetime

import msgspec

from services.domain.commands import (
    Command,
    DispatchRun,
    LogRunMessage,
    RecordHeartbeat,
    ReportProgress,
    TriggerRuns,
)
from services.domain.decide import decide
from services.domain.evolve import evolve
from services.domain.operations.bulk_trigger import trigger_each
from services.domain.operations.delete_job import drain
from services.domain.operations.followups import follow_ups
from services.domain.operations.hold import Taken, key_held_until, rehold, start_room, take
from services.domain.operations.reschedule import reschedule
from services.domain.operations.sweep import step as sweep_step
from services.domain.results import Duplicate, Rejection, RunEvent
from services.domain.state import (
    Aggregate,
    Answer,
    ItemAnswer,
    RunStatus,
    dispatch_order,
    lane_of,
)


class Decision(msgspec.Struct, frozen=True):
    """What handling one command produced: the events to append (in order, each with the
    run it is about), the state after them, and the answer for the caller."""

    events: list[RunEvent]
    state: Aggregate
    answer: Answer
    # Commands for other streams (services.domain.operations.followups).
    followups: list[Command] = msgspec.field(default_factory=list)


def handle(state: Aggregate, command: Command) -> Decision:
    """Decide a command at its own ``issued_at``, apply the events, then dispatch whatever
    queued runs may now start and reschedule the job's cron if its schedule changed.

    The caller keeps each command's answer and does not hand a repeated command id here
    again: a repeat gets the first answer and causes nothing.
    """
    now = command.issued_at
    items: list[ItemAnswer] | None = None
    if isinstance(command, TriggerRuns):
        state, events, items = trigger_each(state, command, now)
    else:
        outcome = decide(state, command, now)
        if isinstance(outcome, Rejection):
            answer = Answer(seq=state.job.seq, rejected=True, code=outcome.code,
                            reason=outcome.reason)
            return Decision([], state, answer)
        if isinstance(outcome, Duplicate):
            answer = Answer(seq=state.job.seq, run_id=outcome.run_id, idempotency_hit=True)
            return Decision([], state, answer)
        events = list(outcome)
        for run_id, event in outcome:
            state = evolve(state, run_id, event)
    for run_id, event in [*drain(state), *sweep_step(state)]:
        state = evolve(state, run_id, event)
        events.append((run_id, event))
    # Again while a round starts fewer runs than it picked (a run that may not run
    # under the latest version fails, and one past its expiry expires, instead of
    # starting, leaving its room free).
    while picked := dispatchable(state, now):
        running = state.job.running_count
        for run_id in picked:
            dispatch = DispatchRun(command_id=command.command_id,
                                   project_id=command.project_id, job_id=command.job_id,
                                   issued_at=now, run_id=run_id)
            followup = decide(state, dispatch, now)
            assert isinstance(followup, list), followup
            for rid, event in followup:
                state = evolve(state, rid, event)
                events.append((rid, event))
        if state.job.running_count - running == len(picked):
            break
    for rid, event in reschedule(state.job, now):
        state = evolve(state, rid, event)
        events.append((rid, event))
    for rid, event in rehold(state, now):
        state = evolve(state, rid, event)
        events.append((rid, event))

    run_id = getattr(command, "run_id", None)
    answer = Answer(seq=state.job.seq, run_id=run_id, code=_note(state, command), items=items)
    return Decision(events, state, answer, follow_ups(state, command, events))


def _note(state: Aggregate, command: Command) -> str | None:
    """What an accepted command's answer tells besides: a callback from an attempt whose
    run is canceling hears that its cancel was requested (it should stop and report)."""
    if isinstance(command, RecordHeartbeat | ReportProgress | LogRunMessage):
        run = state.runs.get(command.run_id)
        if run is not None and run.status is RunStatus.CANCELING:
            return "cancel_requested"
    return None


def dispatchable(state: Aggregate, now: datetime) -> list[str]:
    """Queued runs that may start at ``now``, in dispatch order, within the job's
    concurrency limit and each key's, its execution window and its rate limit. The
    processor offers the candidates (the first runs of the lanes with room); this is the
    authority that checks them."""
    spec = state.job.spec
    if spec is None or not state.job.queued_count or state.job.deleted:
        return []
    queued = sorted((run for run in state.runs.values() if run.status is RunStatus.QUEUED),
                    key=dispatch_order)
    limit = spec.max_concurrency
    room = len(queued) if limit is None else max(0, limit - state.job.running_count)
    gates = start_room(state.job, now)
    if gates is not None:
        room = min(room, gates)
    per_key = spec.max_concurrency_per_key
    started: dict[str, int] = {}
    taken: Taken = {}
    chosen: list[str] = []
    for run in queued:
        if len(chosen) >= room:
            break
        lane = lane_of(run)
        key_full = per_key is not None and lane and (
            state.key(lane).running + started.get(lane, 0) >= per_key)
        if key_full:
            continue
        if spec.rate_limit_keys:
            if key_held_until(state, run, taken, now) is not None:
                continue
            take(state, run, taken)
        if per_key is not None and lane:
            started[lane] = started.get(lane, 0) + 1
        chosen.append(run.run_id)
    return chosen
