"""evolve(state, event) -> state: the only way state changes. Pure, total, no I/O."""

from msgspec.structs import replace

from events.types import (
    Event,
    JobCreated,
    JobDeleted,
    JobDisabled,
    JobEnabled,
    JobUpdated,
    RunCanceled,
    RunCancelRequested,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)
from services.domain.state import Aggregate, JobState, RunState, RunStatus
from services.domain.version_policy import pin_of

# Which of the job's counters a run in each status counts in.
_COUNTER = {
    RunStatus.QUEUED: "queued_count",
    RunStatus.DELAYED: "delayed_count",
    RunStatus.RUNNING: "running_count",
    RunStatus.CANCELING: "running_count",
}


def _moved(job: JobState, before: RunStatus | None, after: RunStatus) -> JobState:
    """The job's counters once a run went from ``before`` to ``after``."""
    counts: dict[str, int] = {}
    if before is not None and (old := _COUNTER.get(before)):
        counts[old] = getattr(job, old) - 1
    if new := _COUNTER.get(after):
        counts[new] = counts.get(new, getattr(job, new)) + 1
    return replace(job, **counts) if counts else job


def evolve(state: Aggregate, run_id: str | None, event: Event) -> Aggregate:
    """Apply one event; ``run_id`` is the run the event is about (from its envelope)."""
    job = replace(state.job, seq=state.job.seq + 1)
    if isinstance(event, JobCreated):
        enabled = event.spec.enabled if event.enabled is None else event.enabled
        return replace(state, job=replace(job, spec=event.spec, version=event.version,
                                          enabled=enabled))
    if isinstance(event, JobUpdated):
        floor = job.compat_floor
        if not event.backwards_compatible and "payload_schema" in event.changed_fields:
            floor = event.version
        return replace(state, job=replace(job, spec=event.spec, version=event.version,
                                          updated_by=event.updated_by, compat_floor=floor))
    if isinstance(event, JobDeleted):
        return replace(state, job=replace(job, deleted=True, updated_by=event.by))
    if isinstance(event, JobEnabled | JobDisabled):
        return replace(state, job=replace(job, enabled=isinstance(event, JobEnabled),
                                          updated_by=event.by))
    assert run_id is not None, f"{type(event).__name__} needs a run id"
    if isinstance(event, RunTriggered):
        run = RunState(run_id=run_id, job_id=job.job_id, status=RunStatus.QUEUED,
                       priority=event.priority, position=job.seq,
                       max_attempts=event.max_attempts, timeout_secs=event.timeout_secs,
                       payload=event.payload, metadata=event.metadata,
                       job_version=event.job_version,
                       pinned=None if job.spec is None else pin_of(job.spec))
        return Aggregate(job=_moved(job, None, run.status), runs={**state.runs, run_id: run})

    before = state.runs[run_id]
    match event:
        case RunDispatched(attempt=attempt, deadline_at=deadline):
            run = replace(before, status=RunStatus.RUNNING, attempt=attempt,
                          next_retry_at=None, deadline_at=deadline)
        case RunCompleted():
            run = replace(before, status=RunStatus.COMPLETED, deadline_at=None)
        case RunRetryScheduled(next_retry_at=at):
            run = replace(before, status=RunStatus.DELAYED, next_retry_at=at, deadline_at=None)
        case RunRequeued():
            run = replace(before, status=RunStatus.QUEUED, next_retry_at=None,
                          position=job.seq)
        case RunFailed(status=status):
            run = replace(before, status=RunStatus(status), deadline_at=None)
        case RunCancelRequested():
            run = replace(before, status=RunStatus.CANCELING)
        case RunCanceled():
            run = replace(before, status=RunStatus.CANCELED, next_retry_at=None,
                          deadline_at=None)
        case _:
            raise AssertionError(f"unhandled event {event!r}")
    job = _moved(job, before.status, run.status)
    return Aggregate(job=job, runs={**state.runs, run_id: run})
