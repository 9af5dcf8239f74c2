"""DispatchRun: a queued run starts its next attempt, with a deadline for its report."""

from datetime import datetime, timedelta

from events.types import AttemptFailure, RunDispatched, RunExpired, RunFailed
from services.domain.results import Rejection, RunEvent
from services.domain.state import Aggregate, RunState, RunStatus, expired
from services.domain.version_policy import incompatible, settings_for

# How long past its HTTP timeout an attempt may go unreported before it counts as lost:
# room for queueing in the dispatch topic and for the report's own trip.
REPORT_GRACE_SECS = 30


def decide_dispatch(state: Aggregate, run: RunState, now: datetime) -> list[RunEvent] | Rejection:
    assert state.job.spec is not None
    if run.status is not RunStatus.QUEUED:
        return Rejection("conflict", f"run {run.run_id} is {run.status}, not queued")
    if expired(run, now):
        assert run.expires_at is not None
        return [(run.run_id, RunExpired(expires_at=run.expires_at))]
    why = incompatible(state.job, run)
    if why is not None:
        failure = AttemptFailure(kind="incompatible_version", message=why, retryable=False)
        return [(run.run_id, RunFailed(attempt=run.attempt, failure=failure))]
    settings = settings_for(state.job, run)
    deadline = now + timedelta(seconds=settings.timeout_secs + REPORT_GRACE_SECS)
    return [(run.run_id, RunDispatched(attempt=run.attempt + 1,
                                       endpoint_url=settings.endpoint_url,
                                       deadline_at=deadline,
                                       fallback_endpoint_url=settings.fallback_endpoint_url,
                                       timeout_secs=settings.timeout_secs,
                                       job_version=run.job_version, at=now))]
