"""The executor's reports: an attempt succeeded, or failed and is retried or given up."""

from datetime import datetime
from typing import Literal

from events.types import AttemptFailure, RunCanceled, RunCompleted, RunFailed, RunRetryScheduled
from services.domain.commands import ReportAttemptFailed, ReportAttemptSucceeded
from services.domain.results import Rejection, RunEvent
from services.domain.retry import GiveUp, retry_decision
from services.domain.state import Aggregate, RunState, RunStatus
from services.domain.version_policy import settings_for


def decide_report(
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
        return attempt_failed(state, run, command.failure, now)
    if run.status is RunStatus.CANCELING:
        return [(run.run_id, RunCanceled(reason="canceled while running"))]
    return [(run.run_id, RunCompleted(attempt=run.attempt, result=command.result,
                                      status_code=command.status_code,
                                      duration_ms=command.duration_ms))]


def attempt_failed(state: Aggregate, run: RunState, failure: AttemptFailure,
                   now: datetime) -> list[RunEvent]:
    """An attempt ended without success: retry later, or give the run up."""
    rid = run.run_id
    if run.status is RunStatus.CANCELING:
        return [(rid, RunCanceled(reason="canceled while running"))]
    assert state.job.spec is not None
    settings = settings_for(state.job, run)
    decision = retry_decision(run.attempt, settings.max_attempts, failure, settings.retry_spec,
                              now, settings.retry_max_delay_secs)
    if isinstance(decision, GiveUp):
        status: Literal["failed", "timed_out"] = (
            "timed_out" if failure.kind == "timeout" else "failed"
        )
        return [(rid, RunFailed(attempt=run.attempt, failure=failure, status=status))]
    return [(rid, RunRetryScheduled(attempt=run.attempt, failure=failure,
                                    next_retry_at=decision.at))]
