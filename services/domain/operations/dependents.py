"""AddDependent and RemoveDependent: which jobs run after this job's runs. Kept on the
upstream job, which sees its runs end and triggers the downstream ones (follow-ups). That
no dependency closes a cycle is checked by the API over the whole graph; the lineage
depth limit stops a cycle a race let through."""

from events.types import JobDependentAdded, JobDependentRemoved
from services.domain.commands import AddDependent, RemoveDependent
from services.domain.results import Rejection, RunEvent
from services.domain.state import MAX_DEPENDENTS, Aggregate


def decide_dependents(state: Aggregate,
                      command: AddDependent | RemoveDependent) -> list[RunEvent] | Rejection:
    dependents = state.job.dependents
    downstream = command.downstream_job_id
    if isinstance(command, RemoveDependent):
        if downstream not in dependents:
            return Rejection("not_found", f"job {downstream} does not depend on "
                                          f"{command.job_id}")
        return [(None, JobDependentRemoved(downstream_job_id=downstream, by=command.actor))]
    if downstream == command.job_id:
        return Rejection("invalid", "a job cannot depend on itself")
    if dependents.get(downstream) == command.condition:
        return []  # as asked already
    if downstream not in dependents and len(dependents) >= MAX_DEPENDENTS:
        return Rejection("conflict", f"job {command.job_id} has {MAX_DEPENDENTS} dependent "
                                     "jobs, the most one job may have")
    return [(None, JobDependentAdded(downstream_job_id=downstream, condition=command.condition,
                                     by=command.actor))]
