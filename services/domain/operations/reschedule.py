"""The schedule follow-up of every command: keep ``next_tick_at`` on the schedule the job
should have.

No command schedules on its own. After any command, ``handle`` compares the schedule the
job should tick on (``wanted_schedule``: its cron while it takes triggers) with the one
its ``next_tick_at`` was computed for, and when they differ records the change as
``job.schedule_set``. Creating, editing, enabling, disabling and deleting a job thus
reschedule it without any code of their own.
"""

from datetime import datetime

from events.types import JobScheduleSet
from services.domain.results import RunEvent
from services.domain.schedule import next_tick
from services.domain.state import JobState, wanted_schedule


def reschedule(job: JobState, now: datetime) -> list[RunEvent]:
    wanted = wanted_schedule(job)
    if wanted == job.schedule_of:
        return []
    if wanted is None:
        return [(None, JobScheduleSet())]
    # From now, or from the last tick that fired if a clock behind the timer's made the
    # change: a tick that fired never fires again (its run id would be reused).
    after = max(now, job.last_tick_at) if job.last_tick_at else now
    following = next_tick(wanted.cron, wanted.timezone, after)
    return [(None, JobScheduleSet(next_tick_at=following, cron=wanted.cron,
                                  timezone=wanted.timezone))]
