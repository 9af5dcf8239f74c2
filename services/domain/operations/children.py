"""SpawnChild: the endpoint working on an attempt starts a child run of another job
(seed 004's job tree). Decided on the parent's stream, which keeps the child's reference
so that canceling the parent reaches it; the child is then triggered on its own job's
stream (a follow-up command)."""

from events.types import RunChildSpawned
from services.domain.commands import SpawnChild
from services.domain.operations.report import not_in_progress
from services.domain.results import Rejection, RunEvent
from services.domain.state import MAX_CHILDREN, MAX_LINEAGE_DEPTH, RunState, in_attempt


def decide_spawn(run: RunState, command: SpawnChild) -> list[RunEvent] | Rejection:
    if not in_attempt(run, command.attempt):
        return not_in_progress(run, command.attempt)
    if len(run.children) >= MAX_CHILDREN:
        return Rejection("conflict", f"run {run.run_id} has {MAX_CHILDREN} children, the most "
                                     "one run may spawn")
    if run.lineage_depth + 1 > MAX_LINEAGE_DEPTH:
        return Rejection("conflict", f"run {run.run_id} is {run.lineage_depth} steps down its "
                                     f"lineage; a child would pass {MAX_LINEAGE_DEPTH}")
    if any(child.run_id == command.child_run_id for child in run.children):
        return Rejection("conflict", f"run {command.child_run_id} was spawned already")
    return [(run.run_id, RunChildSpawned(attempt=run.attempt, child_job_id=command.child_job_id,
                                         child_run_id=command.child_run_id,
                                         run_type=command.run_type, payload=command.payload))]
