"""evolve(state, event) -> state: the only way state changes. Pure, total, no I/O."""

from msgspec.structs import replace

from events.types import (
    Event,
    JobCreated,
    JobCronTicked,
    JobScheduleSet,
    RunCanceled,
    RunCancelRequested,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)
from services.domain.state import Aggregate, CronSchedule, JobState, RunState, RunStatus

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
        return replace(state, job=replace(job, spec=event.spec, version=event.version))
    if isinstance(event, JobScheduleSet):
        schedule = None if event.cron is None else CronSchedule(event.cron,
                                                                event.timezone or "UTC")
        return replace(state, job=replace(job, schedule_of=schedule,
                                          next_tick_at=event.next_tick_at))
    if isinstance(event, JobCronTicked):
        return replace(state, job=replace(job, next_tick_at=event.next_tick_at,
                                          last_tick_at=event.tick_at))
    assert run_id is not None, f"{type(event).__name__} needs a run id"
    if isinstance(event, RunTriggered):
        run = RunState(run_id=run_id, job_id=job.job_id, status=RunStatus.QUEUED,
                       priority=event.priority, position=job.seq,
                       max_attempts=event.max_attempts, timeout_secs=event.timeout_secs,
                       payload=event.payload, metadata=event.metadata)
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
