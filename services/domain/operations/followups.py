"""The commands a decision sends to other streams (the processor writes them to the
commands topic with the events, so neither is lost without the other):

- a spawned child is triggered on its own job;
- a run that ends triggers the jobs that depend on its job, as its condition says;
- a run canceled (or asked to stop) cancels its unfinished children;
- a bulk operation started on the project's stream asks each of its jobs to do its part.

Their ids derive from the command's, so deciding the command again (after a crash)
sends the same commands, and a repeat is refused where it lands (the run exists, or is
over already).
"""

import hashlib
from typing import Any

from events.types import (
    ProjectOperationStarted,
    RunCanceled,
    RunCancelRequested,
    RunChildSpawned,
    RunCompleted,
    RunCrashed,
    RunFailed,
)
from services.domain.commands import CancelRun, Command, SweepWaitingRuns, TriggerRun
from services.domain.results import RunEvent
from services.domain.state import MAX_LINEAGE_DEPTH, Aggregate

# Which conditions an ending triggers (a canceled or expired run triggers nothing: it
# was stopped, it did not end).
_MET_BY = {RunCompleted: {"on_success", "on_completion"},
           RunFailed: {"on_failure", "on_completion"},
           RunCrashed: {"on_failure", "on_completion"}}


def dependency_run_id(upstream_run_id: str, downstream_job_id: str) -> str:
    """The one run an upstream run triggers of a downstream job."""
    digest = hashlib.sha256(f"{upstream_run_id}\x1f{downstream_job_id}".encode()).hexdigest()
    return f"run_dep_{digest[:32]}"


# Events that may have follow-ups whatever the job; a run's ending has some only where
# the job has dependents.
_ALWAYS_FOLLOWED = (ProjectOperationStarted, RunChildSpawned, RunCanceled, RunCancelRequested)


def follow_ups(state: Aggregate, command: Command, events: list[RunEvent]) -> list[Command]:
    # Most decisions have none: say so without building anything.
    dependents = bool(state.job.dependents)
    if not any(isinstance(event, _ALWAYS_FOLLOWED) or (dependents and type(event) in _MET_BY)
               for _, event in events):
        return []
    found: list[Command] = []
    base: dict[str, Any] = {"project_id": command.project_id, "issued_at": command.issued_at,
                            "actor": "system", "awaits_outcome": False}

    def next_id() -> str:
        return f"{command.command_id}:follow:{len(found)}"

    for run_id, event in events:
        if isinstance(event, ProjectOperationStarted):
            for job_id in event.job_ids:
                found.append(SweepWaitingRuns(**base, command_id=next_id(), job_id=job_id,
                                              operation_id=event.operation_id,
                                              job_version=event.job_version))
            continue
        run = state.runs.get(run_id) if run_id is not None else None
        if run is None:
            continue
        if isinstance(event, RunChildSpawned):
            found.append(TriggerRun(
                **base, command_id=next_id(), job_id=event.child_job_id,
                run_id=event.child_run_id, payload=event.payload, triggered_by="parent",
                parent_run_id=run.run_id, lineage_depth=run.lineage_depth + 1,
                run_type=event.run_type, created_by=f"run:{run.run_id}"))
        elif isinstance(event, RunCanceled | RunCancelRequested):
            for child in run.children:
                found.append(CancelRun(**base, command_id=next_id(), job_id=child.job_id,
                                       run_id=child.run_id, by_system=True,
                                       reason=f"parent run {run.run_id} canceled"))
        elif (met := _MET_BY.get(type(event))) is not None:
            # Most jobs have no dependents: an ending costs them nothing more.
            if not state.job.dependents or run.lineage_depth + 1 > MAX_LINEAGE_DEPTH:
                continue
            status = event.status if isinstance(event, RunFailed) else (
                "completed" if isinstance(event, RunCompleted) else "crashed")
            upstream = {"job_id": command.job_id, "run_id": run.run_id, "status": status,
                        "result": event.result if isinstance(event, RunCompleted) else None}
            for downstream, condition in sorted(state.job.dependents.items()):
                if condition in met:
                    found.append(TriggerRun(
                        **base, command_id=next_id(), job_id=downstream,
                        run_id=dependency_run_id(run.run_id, downstream),
                        payload={"upstream": upstream}, triggered_by="dependency",
                        parent_run_id=run.run_id, lineage_depth=run.lineage_depth + 1,
                        created_by=f"job:{command.job_id}"))
    return found
