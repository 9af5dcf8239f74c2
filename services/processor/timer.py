"""The processor's timer: asks for due retries, overdue attempts, due cron ticks and job
wake-ups (a hold ended, a drain to go on) to be decided.

It only asks: requeueing, timing out or firing a tick is a command like any other
(FireDueTimers naming the runs, FireCronTick naming the tick), so it is on the log and
decided in order with everything else the job receives. The due runs and jobs come from
the store's timer indexes, so a tick costs what is due, not a scan of every job; what stays
due is asked about again less and less often (TimerIndex, JobTimerIndex).
"""

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from services.deadletter import dead_letter, encode_dead_letter
from services.domain import Command, JobState, encode_command
from services.domain.commands import FireCronTick, FireDueTimers, WakeJob
from services.domain.state import job_due_at
from services.processor.ports import TableStore

log = logging.getLogger(__name__)

Send = Callable[[bytes, bytes], Awaitable[object]]  # key, value
# The most runs one FireDueTimers command names (the rest are asked about next tick).
RUNS_PER_COMMAND = 200


async def ask_for_due_timers(store: TableStore, send_command: Send, send_letter: Send,
                             now: datetime | None = None) -> int:
    """Send one FireDueTimers per job with due runs; returns how many were sent."""
    at = now or datetime.now(UTC)
    due = store.due(at)

    def commands(job_id: str, job: JobState) -> list[Command]:
        run_ids = due[job_id]
        return [FireDueTimers(command_id=f"timers:{job_id}:{uuid.uuid4().hex}",
                              project_id=job.project_id, job_id=job_id, issued_at=at,
                              actor="timer", awaits_outcome=False,
                              run_ids=run_ids[start:start + RUNS_PER_COMMAND])
                for start in range(0, len(run_ids), RUNS_PER_COMMAND)]

    return await _ask(store, due, commands, send_command, send_letter)


async def ask_for_job_timers(store: TableStore, send_command: Send, send_letter: Send,
                             now: datetime | None = None) -> int:
    """Send one command per job that is due (``job_due_at``): FireCronTick when its next
    tick came, else WakeJob (a hold on its runs ended, or a deleted job has runs left to
    cancel); returns how many were sent. A tick asked for twice (a slow processor, a
    restart) fires once: the second finds the job's next tick moved on. Either command's
    follow-ups start what may start, so one per job is enough."""
    at = now or datetime.now(UTC)

    def commands(job_id: str, job: JobState) -> list[Command]:
        due = job_due_at(job)
        if due is None or due > at:
            return []
        if job.next_tick_at is not None and job.next_tick_at <= at and not job.deleted:
            return [FireCronTick(command_id=f"cron:{job_id}:{uuid.uuid4().hex}",
                                 project_id=job.project_id, job_id=job_id, issued_at=at,
                                 actor="timer", awaits_outcome=False,
                                 tick_at=job.next_tick_at)]
        return [WakeJob(command_id=f"wake:{job_id}:{uuid.uuid4().hex}",
                        project_id=job.project_id, job_id=job_id, issued_at=at,
                        actor="timer", awaits_outcome=False)]

    return await _ask(store, store.due_jobs(at), commands, send_command, send_letter)


async def _ask(store: TableStore, job_ids: Iterable[str],
               commands: Callable[[str, JobState], list[Command]],
               send_command: Send, send_letter: Send) -> int:
    """Send each job's commands; a job whose state cannot be read or whose commands cannot
    be made is recorded as a dead letter and skipped, so it cannot stop the timer."""
    sent = 0
    for job_id in job_ids:
        try:
            job = store.get_job(job_id)
            if job is None:
                continue
            for command in commands(job_id, job):
                await send_command(job_id.encode(), encode_command(command))
                sent += 1
        except Exception as exc:  # one job's bad state must not stop the timer
            letter = dead_letter("timer", exc, "skipped by the timer this tick", key=job_id)
            await send_letter(job_id.encode(), encode_dead_letter(letter))
    return sent
