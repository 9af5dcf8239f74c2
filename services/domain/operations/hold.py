"""The start gates of a job (execution window, rate limit) and the hold follow-up of
every command.

``start_room`` says how many runs may start now as far as the gates go; ``dispatchable``
takes it into account. After any command, ``handle`` compares the hold the job should
have (queued runs that the gates keep waiting, and until when) with the one it has, and
records a change as ``job.dispatch_held``. The hold is what wakes the job: the timer
looks at it again at ``held_until`` (``job_due_at``), and that command starts the runs
that may start then. Nothing is recorded per held run, so a hold costs the same for one
queued run as for a hundred thousand.
"""

from datetime import datetime

from events.types import JobDispatchHeld
from services.domain.pacing import rate_frees_at, rate_room, window_open, window_opens_at
from services.domain.results import RunEvent
from services.domain.state import JobState


def start_room(job: JobState, now: datetime) -> int | None:
    """How many runs the gates let start at ``now`` (None: no gate limits it)."""
    spec = job.spec
    if spec is None:
        return None
    if spec.execution_window_cron and not window_open(spec.execution_window_cron,
                                                      spec.timezone, now):
        return 0
    if spec.rate_limit_max and spec.rate_limit_window_secs:
        return rate_room(job.rate, spec.rate_limit_max, spec.rate_limit_window_secs, now)
    return None


def wanted_hold(job: JobState, now: datetime) -> tuple[datetime | None, str | None]:
    """Until when and why the job's queued runs wait for a gate; (None, None) if they
    do not (none wait, or the gates have room)."""
    spec = job.spec
    if spec is None or job.deleted or not job.queued_count or start_room(job, now) != 0:
        return None, None
    window = spec.execution_window_cron
    if window and not window_open(window, spec.timezone, now):
        return window_opens_at(window, spec.timezone, now), "execution_window"
    assert spec.rate_limit_max and spec.rate_limit_window_secs
    return (rate_frees_at(job.rate, spec.rate_limit_max, spec.rate_limit_window_secs, now),
            "rate_limit")


def rehold(job: JobState, now: datetime) -> list[RunEvent]:
    until, reason = wanted_hold(job, now)
    if (until, reason) == (job.held_until, job.held_reason):
        return []
    return [(None, JobDispatchHeld(until=until, reason=reason))]  # type: ignore[arg-type]
