"""decide(state, command, now) -> events | rejection, and ``handle``, which also applies
the follow-ups a decision makes possible (dispatching queued runs)."""

from datetime import datetime, timedelta
from typing import Literal

import msgspec

from events.types import (
    AttemptFailure,
    Event,
    JobCreated,
    RunCanceled,
    RunCancelRequested,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)
from services.domain.commands import (
    CancelRun,
    Command,
    CreateJob,
    DispatchRun,
    FireDueTimers,
    ReportAttemptFailed,
    ReportAttemptSucceeded,
    TriggerRun,
)
from services.domain.evolve import evolve
from services.domain.retry import GiveUp, retry_decision
from services.domain.state import (
    Aggregate,
    Answer,
    RunState,
    RunStatus,
    dispatch_order,
    timer_due_at,
)

# How long past its HTTP timeout an attempt may go unreported before it counts as lost:
# room for queueing in the dispatch topic and for the report's own trip.
REPORT_GRACE_SECS = 30

RejectionCode = Literal["not_found", "conflict", "invalid"]


class Rejection(msgspec.Struct, frozen=True):
    code: RejectionCode
    reason: str


RunEvent = tuple[str | None, Event]


def decide(state: Aggregate, command: Command, now: datetime) -> list[RunEvent] | Rejection:
    job = state.job
    if isinstance(command, CreateJob):
        if job.spec is not None:
            return Rejection("conflict", f"a job with slug {job.spec.slug!r} already exists")
        return [(None, JobCreated(spec=command.spec, version=1))]
    if job.spec is None or job.project_id != command.project_id:
        return Rejection("not_found", f"job {command.job_id} not found")
    match command:
        case TriggerRun():
            return _trigger(state, command)
        case FireDueTimers():
            return _fire_timers(state, command, now)
    run = state.runs.get(command.run_id)
    if run is None:
        return Rejection("not_found", f"run {command.run_id} not found")
    match command:
        case DispatchRun():
            if run.status is not RunStatus.QUEUED:
                return Rejection("conflict", f"run {run.run_id} is {run.status}, not queued")
            deadline = now + timedelta(seconds=run.timeout_secs + REPORT_GRACE_SECS)
            return [(run.run_id, RunDispatched(attempt=run.attempt + 1,
                                                endpoint_url=job.spec.endpoint_url,
                                                deadline_at=deadline))]
        case CancelRun():
            return _cancel(run, command)
        case ReportAttemptSucceeded() | ReportAttemptFailed():
            return _report(state, run, command, now)
    raise AssertionError(f"unhandled command {command!r}")


def _fire_timers(state: Aggregate, command: FireDueTimers, now: datetime) -> list[RunEvent]:
    """Requeue the named runs whose retry is due and time out the named attempts past
    their report deadline; a named run that is no longer due is left alone (the timer
    may ask about a run twice)."""
    events: list[RunEvent] = []
    due = sorted((at, rid) for rid in set(command.run_ids)
                 if (run := state.runs.get(rid)) is not None
                 and (at := timer_due_at(run)) is not None and at <= now)
    for at, rid in due:
        run = state.runs[rid]
        if run.status is RunStatus.DELAYED:
            events.append((rid, RunRequeued(next_attempt=run.attempt + 1)))
        else:
            lost = AttemptFailure(kind="timeout", message="no report from an executor by "
                                  f"the attempt's deadline {at.isoformat()}")
            events += _attempt_failed(state, run, lost, now)
    return events


def _trigger(state: Aggregate, command: TriggerRun) -> list[RunEvent] | Rejection:
    spec = state.job.spec
    assert spec is not None
    if not spec.enabled:
        return Rejection("conflict", f"job {spec.slug!r} is disabled")
    if command.run_id in state.runs:
        return Rejection("conflict", f"run {command.run_id} already exists")
    return [
        (
            command.run_id,
            RunTriggered(
                payload=command.payload,
                metadata={**spec.default_run_metadata, **command.metadata},
                triggered_by=command.triggered_by,
                priority=command.priority,
                idempotency_key=command.idempotency_key,
                job_version=state.job.version,
                max_attempts=spec.max_attempts,
                timeout_secs=spec.timeout_secs,
                correlation_id=command.correlation_id,
                batch_id=command.batch_id,
            ),
        )
    ]


def _cancel(run: RunState, command: CancelRun) -> list[RunEvent] | Rejection:
    match run.status:
        case RunStatus.QUEUED | RunStatus.DELAYED:
            return [(run.run_id, RunCanceled(reason=command.reason))]
        case RunStatus.RUNNING:
            return [(run.run_id, RunCancelRequested(reason=command.reason,
                                                    requested_by=command.actor))]
        case RunStatus.CANCELING:
            return Rejection("conflict", f"run {run.run_id} is already canceling")
    return Rejection("conflict", f"run {run.run_id} is {run.status}: a finished run "
                                 "cannot be canceled")


def _report(
    state: Aggregate,
    run: RunState,
    command: ReportAttemptSucceeded | ReportAttemptFailed,
    now: datetime,
) -> list[RunEvent] | Rejection:
    if run.status not in (RunStatus.RUNNING, RunStatus.CANCELING) or command.attempt != run.attempt:
        # A late or repeated report for an attempt that has already ended.
        return Rejection("conflict", f"attempt {command.attempt} of run {run.run_id} is not "
                                     f"in progress (run is {run.status}, attempt {run.attempt})")
    if isinstance(command, ReportAttemptFailed):
        return _attempt_failed(state, run, command.failure, now)
    if run.status is RunStatus.CANCELING:
        return [(run.run_id, RunCanceled(reason="canceled while running"))]
    return [(run.run_id, RunCompleted(attempt=run.attempt, result=command.result,
                                      status_code=command.status_code,
                                      duration_ms=command.duration_ms))]


def _attempt_failed(state: Aggregate, run: RunState, failure: AttemptFailure,
                    now: datetime) -> list[RunEvent]:
    rid = run.run_id
    if run.status is RunStatus.CANCELING:
        return [(rid, RunCanceled(reason="canceled while running"))]
    assert state.job.spec is not None
    decision = retry_decision(run.attempt, run.max_attempts, failure, state.job.spec, now)
    if isinstance(decision, GiveUp):
        status: Literal["failed", "timed_out"] = (
            "timed_out" if failure.kind == "timeout" else "failed"
        )
        return [(rid, RunFailed(attempt=run.attempt, failure=failure, status=status))]
    return [(rid, RunRetryScheduled(attempt=run.attempt, failure=failure,
                                    next_retry_at=decision.at))]


class Decision(msgspec.Struct, frozen=True):
    """What handling one command produced: the events to append (in order, each with the
    run it is about), the state after them, and the answer for the caller."""

    events: list[RunEvent]
    state: Aggregate
    answer: Answer


def handle(state: Aggregate, command: Command) -> Decision:
    """Decide a command at its own ``issued_at``, apply the events, then dispatch whatever
    queued runs may now start.

    The caller keeps each command's answer and does not hand a repeated command id here
    again: a repeat gets the first answer and causes nothing.
    """
    now = command.issued_at
    outcome = decide(state, command, now)
    if isinstance(outcome, Rejection):
        answer = Answer(seq=state.job.seq, rejected=True, code=outcome.code, reason=outcome.reason)
        return Decision([], state, answer)

    events = list(outcome)
    for run_id, event in outcome:
        state = evolve(state, run_id, event)
    for run_id in dispatchable(state):
        dispatch = DispatchRun(command_id=command.command_id, project_id=command.project_id,
                               job_id=command.job_id, issued_at=now, run_id=run_id)
        followup = decide(state, dispatch, now)
        assert not isinstance(followup, Rejection), followup
        for rid, event in followup:
            state = evolve(state, rid, event)
            events.append((rid, event))

    run_id = getattr(command, "run_id", None)
    answer = Answer(seq=state.job.seq, run_id=run_id)
    return Decision(events, state, answer)


def dispatchable(state: Aggregate) -> list[str]:
    """Queued runs that may start now, in dispatch order, within the concurrency limit."""
    spec = state.job.spec
    if spec is None or not state.job.queued_count:
        return []
    queued = sorted((run for run in state.runs.values() if run.status is RunStatus.QUEUED),
                    key=dispatch_order)
    limit = spec.max_concurrency
    room = len(queued) if limit is None else max(0, limit - state.job.running_count)
    return [run.run_id for run in queued[:room]]

