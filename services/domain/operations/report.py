"""The attempt's reports: it succeeded, failed (retried or given up), or the endpoint
accepted it (202) and will report through the callbacks."""

from datetime import datetime, timedelta
from typing import Literal

from events.types import (
    AttemptFailure,
    ExecutionTrace,
    RunAccepted,
    RunCompleted,
    RunFailed,
    RunRetryScheduled,
)
from services.domain.commands import (
    ReportAttemptAccepted,
    ReportAttemptFailed,
    ReportAttemptSucceeded,
)
from services.domain.operations.cancel import stopped
from services.domain.operations.dispatch import REPORT_GRACE_SECS
from services.domain.results import Rejection, RunEvent
from services.domain.retry import GiveUp, retry_decision
from services.domain.state import Aggregate, RunState, RunStatus, in_attempt
from services.domain.version_policy import settings_for


def not_in_progress(run: RunState, attempt: int) -> Rejection:
    return Rejection("conflict", f"attempt {attempt} of run {run.run_id} is not in progress "
                                 f"(run is {run.status}, attempt {run.attempt})")


def decide_report(
    state: Aggregate,
    run: RunState,
    command: ReportAttemptSucceeded | ReportAttemptFailed | ReportAttemptAccepted,
    now: datetime,
) -> list[RunEvent] | Rejection:
    if not in_attempt(run, command.attempt):
        # A late or repeated report for an attempt that has already ended.
        return not_in_progress(run, command.attempt)
    if isinstance(command, ReportAttemptAccepted):
        return _accepted(state, run, command, now)
    if isinstance(command, ReportAttemptFailed):
        return attempt_failed(state, run, command.failure, now, command.trace)
    if run.status is RunStatus.CANCELING:
        return [stopped(run, "the attempt ended")]
    return [(run.run_id, RunCompleted(attempt=run.attempt, result=command.result,
                                      status_code=command.status_code,
                                      duration_ms=command.duration_ms, trace=command.trace))]


def _accepted(state: Aggregate, run: RunState, command: ReportAttemptAccepted,
              now: datetime) -> list[RunEvent] | Rejection:
    if run.accepted:
        # The order was carried out again (an executor restarted mid-call) and the
        # endpoint accepted it again: the attempt is already in its hands.
        return Rejection("conflict", f"attempt {run.attempt} of run {run.run_id} was "
                                     "accepted already")
    if run.status is RunStatus.CANCELING:
        # Accepted as the cancel went out: the notice reaches the endpoint, and the cancel
        # deadline ends the attempt if it never reports. Nothing to change.
        return []
    assert state.job.spec is not None
    # The executor no longer waits, so no grace for its report: the attempt's own
    # timeout from its start is what bounds it now.
    deadline = now + timedelta(seconds=settings_for(state.job, run).timeout_secs)
    if run.deadline_at is not None:
        deadline = min(deadline, run.deadline_at - timedelta(seconds=REPORT_GRACE_SECS))
    timeout = state.job.spec.heartbeat_timeout_secs
    due = None if timeout is None else now + timedelta(seconds=timeout)
    return [(run.run_id, RunAccepted(attempt=run.attempt, deadline_at=max(deadline, now),
                                     heartbeat_due_at=due, trace=command.trace))]


def attempt_failed(state: Aggregate, run: RunState, failure: AttemptFailure,
                   now: datetime, trace: ExecutionTrace | None = None) -> list[RunEvent]:
    """An attempt ended without success: retry later, or give the run up."""
    rid = run.run_id
    if run.status is RunStatus.CANCELING:
        return [stopped(run, failure.message[:200])]
    assert state.job.spec is not None
    settings = settings_for(state.job, run)
    decision = retry_decision(run.attempt, settings.max_attempts, failure, settings.retry_spec,
                              now, settings.retry_max_delay_secs, run_id=rid)
    if isinstance(decision, GiveUp):
        status: Literal["failed", "timed_out"] = (
            "timed_out" if failure.kind == "timeout" else "failed"
        )
        return [(rid, RunFailed(attempt=run.attempt, failure=failure, status=status,
                                trace=trace))]
    return [(rid, RunRetryScheduled(attempt=run.attempt, failure=failure,
                                    next_retry_at=decision.at, trace=trace))]
