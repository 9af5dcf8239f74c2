"""Bulk cancel of waiting runs, as a tracked operation: StartOperation (on the project's
stream) records it and sends SweepWaitingRuns to each job; each job cancels its queued
and delayed runs born before the sweep began, a chunk per command (the processor loads
the chunk; ``step`` cancels it), and is due at once on the timer until done, like a
deleted job's drain. The cost of one command never grows with the backlog."""

from events.types import (
    JobSweepFinished,
    JobSweepProgressed,
    JobSweepStarted,
    ProjectOperationStarted,
    RunCanceled,
)
from services.domain.commands import StartOperation, SweepWaitingRuns, project_stream
from services.domain.results import Rejection, RunEvent
from services.domain.state import Aggregate, RunStatus

# The most waiting runs one command loads and looks at.
SWEEP_CHUNK = 500
_WAITING = (RunStatus.QUEUED, RunStatus.DELAYED)


def decide_start(command: StartOperation) -> list[RunEvent] | Rejection:
    if command.job_id != project_stream(command.project_id):
        return Rejection("invalid", "operations start on the project's own stream")
    return [(None, ProjectOperationStarted(operation_id=command.operation_id,
                                           job_ids=list(command.job_ids),
                                           job_version=command.job_version,
                                           by=command.actor))]


def decide_sweep(state: Aggregate, command: SweepWaitingRuns) -> list[RunEvent]:
    job = state.job
    events: list[RunEvent] = []
    if job.sweep is not None:
        if job.sweep.operation_id == command.operation_id:
            return []  # the same operation asked again
        events.append((None, JobSweepFinished(operation_id=job.sweep.operation_id,
                                              canceled=job.sweep.canceled, superseded=True)))
    if job.deleted:
        # Its queued runs are drained by the delete already, its delayed ones as they
        # come due: nothing of it will start.
        return [*events, (None, JobSweepFinished(operation_id=command.operation_id,
                                                 canceled=0))]
    return [*events, (None, JobSweepStarted(operation_id=command.operation_id, up_to=job.seq,
                                            job_version=command.job_version))]


def step(state: Aggregate) -> list[RunEvent]:
    """Cancel the loaded chunk of the sweep in progress, and record how far it got."""
    sweep = state.job.sweep
    if sweep is None:
        return []
    events: list[RunEvent] = []
    cursor, finished = sweep.cursor, not state.sweep_more
    for run_id in state.sweep_chunk:
        run = state.runs.get(run_id)
        if run is None:
            continue
        if run.born > sweep.up_to:
            finished = True  # born after the sweep began: it and all after it stay
            break
        cursor = run.born
        if run.status in _WAITING and sweep.job_version in (None, run.job_version):
            events.append((run_id, RunCanceled(
                reason=f"canceled in bulk (operation {sweep.operation_id})",
                code="JOB_USER_CANCELED")))
    canceled = sweep.canceled + len(events)
    if finished:
        events.append((None, JobSweepFinished(operation_id=sweep.operation_id,
                                              canceled=canceled)))
    elif events or cursor != sweep.cursor:
        events.append((None, JobSweepProgressed(operation_id=sweep.operation_id,
                                                cursor=cursor, canceled=canceled)))
    return events
