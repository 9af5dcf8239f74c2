"""EnableJob / DisableJob: whether the job takes new runs. A repeat changes nothing and
records nothing (it is answered like the first)."""

from events.types import JobDisabled, JobEnabled
from services.domain.commands import DisableJob, EnableJob
from services.domain.results import RunEvent
from services.domain.state import Aggregate, is_enabled


def decide_toggle(state: Aggregate, command: EnableJob | DisableJob) -> list[RunEvent]:
    want = isinstance(command, EnableJob)
    if is_enabled(state.job) == want:
        return []
    event = JobEnabled(by=command.actor) if want else JobDisabled(by=command.actor)
    return [(None, event)]
