"""FireCronTick: the job's next cron tick came; trigger its run.

Only the tick the job waits for fires (``tick_at == next_tick_at``), and only while the
job takes triggers: a repeat, or a tick asked for again after a restart, finds the job's
``next_tick_at`` moved on and does nothing. The run's id is derived from the job and the
tick, so a command decided again after a crash yields the very same events.

After downtime the timer asks for the oldest tick it missed. One run fires, for the
latest tick due by the command's time; the ticks in between are skipped and counted in
``missed`` (a backlog of identical cron runs would only queue up behind each other and
hit the endpoint in a burst). The next tick is the first one after that time, so the
schedule never drifts and never fires in the past.
"""

import uuid
from datetime import UTC, datetime

from events.types import JobCronTicked
from services.domain.commands import FireCronTick, TriggerRun
from services.domain.operations.trigger import decide_trigger
from services.domain.results import Rejection, RunEvent
from services.domain.schedule import catch_up, next_tick
from services.domain.state import Aggregate, wanted_schedule

_RUN_NAMESPACE = uuid.UUID("5d0b8c4e-2f8a-4f4e-9a57-3f1c2b7d9e10")


def cron_run_id(job_id: str, tick_at: datetime) -> str:
    """The run of one tick of one job: the same on every decision of that tick."""
    name = f"{job_id}@{tick_at.astimezone(UTC).isoformat()}"
    return "run_" + uuid.uuid5(_RUN_NAMESPACE, name).hex


def decide_cron_tick(state: Aggregate, command: FireCronTick,
                     now: datetime) -> list[RunEvent] | Rejection:
    job = state.job
    schedule = wanted_schedule(job)
    # wanted_schedule is None unless the job takes triggers (accepts_triggers).
    if (schedule is None or schedule != job.schedule_of or job.next_tick_at is None
            or command.tick_at != job.next_tick_at or now < command.tick_at):
        return []  # fired already, rescheduled, disabled or deleted: nothing to do
    fire_at, missed = catch_up(schedule.cron, schedule.timezone, command.tick_at, now)
    run_id = cron_run_id(job.job_id, fire_at)
    trigger = TriggerRun(command_id=command.command_id, project_id=command.project_id,
                         job_id=command.job_id, issued_at=now, actor="cron",
                         awaits_outcome=False, run_id=run_id, triggered_by="cron",
                         created_by="cron")
    triggered = decide_trigger(state, trigger)
    if isinstance(triggered, Rejection):
        return triggered
    assert isinstance(triggered, list), "a cron trigger has no idempotency key"
    following = next_tick(schedule.cron, schedule.timezone, now)
    ticked = JobCronTicked(tick_at=fire_at, run_id=run_id, next_tick_at=following,
                           missed=missed)
    return [(None, ticked), *triggered]
