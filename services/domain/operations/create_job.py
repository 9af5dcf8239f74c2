"""CreateJob: a job is created once per id (its id is derived from project and slug)."""

from events.types import JobCreated
from services.domain.commands import CreateJob
from services.domain.results import Rejection, RunEvent
from services.domain.state import Aggregate
from services.domain.versions import version_id_for


def decide_create_job(state: Aggregate, command: CreateJob) -> list[RunEvent] | Rejection:
    if state.job.spec is not None and state.job.deleted:
        # The id follows from the slug, and the old job's runs and versions keep it.
        return Rejection("conflict", f"the slug {state.job.spec.slug!r} belonged to a "
                                     "deleted job and cannot be used again")
    if state.job.spec is not None:
        return Rejection("conflict", f"a job with slug {state.job.spec.slug!r} already exists")
    return [(None, JobCreated(spec=command.spec, version=1,
                              version_id=version_id_for(command.job_id, 1),
                              enabled=command.spec.enabled))]
