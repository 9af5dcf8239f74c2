"""UpdateJob: every update makes a new immutable version of the whole definition."""

from typing import Any

import msgspec

from events.types import JobSpec, JobUpdated
from services.domain.commands import UpdateJob
from services.domain.results import Rejection, RunEvent
from services.domain.state import Aggregate, is_enabled
from services.domain.versions import version_id_for

# Fields an update may not change: the id follows from the slug, the author is fixed.
FIXED = frozenset({"slug", "created_by", "enabled"})


def decide_update(state: Aggregate, command: UpdateJob) -> list[RunEvent] | Rejection:
    job = state.job
    assert job.spec is not None
    fixed = sorted(FIXED & set(command.changes))
    if fixed:
        return Rejection("invalid", f"{', '.join(fixed)} cannot be changed by an update")
    before: dict[str, Any] = msgspec.to_builtins(job.spec)
    try:
        spec = msgspec.convert({**before, **command.changes, "enabled": is_enabled(job)},
                               JobSpec)
    except msgspec.ValidationError as exc:
        return Rejection("invalid", f"the update does not make a valid definition: {exc}")
    after: dict[str, Any] = msgspec.to_builtins(spec)
    changed = sorted(name for name in command.changes if before.get(name) != after.get(name))
    version = job.version + 1
    return [(None, JobUpdated(spec=spec, version=version,
                              version_id=version_id_for(job.job_id, version),
                              changed_fields=changed,
                              backwards_compatible=spec.backwards_compatible,
                              updated_by=command.actor))]
