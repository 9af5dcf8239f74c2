"""evolve(state, event) -> state: the only way state changes. Pure, total, no I/O."""

from msgspec.structs import replace

from events.types import (
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
from services.domain.state import Aggregate, JobState, RunState, RunStatus


def _without(ids: tuple[str, ...], run_id: str) -> tuple[str, ...]:
    return tuple(i for i in ids if i != run_id)


def _finish(job: JobState, run_id: str) -> JobState:
    return replace(
        job,
        queued=_without(job.queued, run_id),
        running=_without(job.running, run_id),
        delayed={k: v for k, v in job.delayed.items() if k != run_id},
        deadlines={k: v for k, v in job.deadlines.items() if k != run_id},
    )


def evolve(state: Aggregate, run_id: str | None, event: Event) -> Aggregate:
    """Apply one event; ``run_id`` is the run the event is about (from its envelope)."""
    job = replace(state.job, seq=state.job.seq + 1)
    runs = state.runs

    def set_run(run: RunState) -> dict[str, RunState]:
        return {**runs, run.run_id: run}

    match event:
        case JobCreated(spec=spec, version=version):
            return replace(state, job=replace(job, spec=spec, version=version))
        case RunTriggered():
            assert run_id is not None
            run = RunState(
                run_id=run_id,
                status=RunStatus.QUEUED,
                max_attempts=event.max_attempts,
                timeout_secs=event.timeout_secs,
                payload=event.payload,
                metadata=event.metadata,
            )
            job = replace(job, queued=(*job.queued, run_id))
            return Aggregate(job=job, runs=set_run(run))

    assert run_id is not None, f"{type(event).__name__} needs a run id"
    run = runs[run_id]
    match event:
        case RunDispatched(attempt=attempt, deadline_at=deadline):
            run = replace(run, status=RunStatus.RUNNING, attempt=attempt, next_retry_at=None,
                          deadline_at=deadline)
            deadlines = job.deadlines if deadline is None else {**job.deadlines,
                                                                 run_id: deadline}
            job = replace(job, queued=_without(job.queued, run_id),
                          running=(*job.running, run_id), deadlines=deadlines)
        case RunCompleted():
            run = replace(run, status=RunStatus.COMPLETED)
            job = _finish(job, run_id)
        case RunRetryScheduled(next_retry_at=at):
            run = replace(run, status=RunStatus.DELAYED, next_retry_at=at)
            job = replace(_finish(job, run_id), delayed={**job.delayed, run_id: at})
        case RunRequeued():
            run = replace(run, status=RunStatus.QUEUED, next_retry_at=None)
            job = replace(_finish(job, run_id), queued=(*job.queued, run_id))
        case RunFailed(status=status):
            run = replace(run, status=RunStatus(status))
            job = _finish(job, run_id)
        case RunCancelRequested():
            run = replace(run, status=RunStatus.CANCELING)
        case RunCanceled():
            run = replace(run, status=RunStatus.CANCELED)
            job = _finish(job, run_id)
    return Aggregate(job=job, runs=set_run(run))
