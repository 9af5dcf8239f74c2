"""The processor's timer: asks for due retries and overdue attempts to be decided.

It only asks: requeueing or timing out is a command like any other (FireDueTimers, naming
the runs), so it is on the log and decided in order with everything else the job receives.
The due runs come from the store's timer index, so a tick costs what is due, not a scan of
every job; a run that stays due is asked about again less and less often (TimerIndex).
"""

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from services.deadletter import dead_letter, encode_dead_letter
from services.domain import encode_command
from services.domain.commands import FireDueTimers
from services.processor.ports import TableStore

log = logging.getLogger(__name__)

Send = Callable[[bytes, bytes], Awaitable[object]]  # key, value
# The most runs one FireDueTimers command names (the rest are asked about next tick).
RUNS_PER_COMMAND = 200


async def ask_for_due_timers(store: TableStore, send_command: Send, send_letter: Send,
                             now: datetime | None = None) -> int:
    """Send one FireDueTimers per job with due runs; returns how many were sent."""
    now = now or datetime.now(UTC)
    sent = 0
    for job_id, run_ids in store.due(now).items():
        try:
            job = store.get_job(job_id)
            if job is None:
                continue
            for start in range(0, len(run_ids), RUNS_PER_COMMAND):
                command = FireDueTimers(
                    command_id=f"timers:{job_id}:{uuid.uuid4().hex}",
                    project_id=job.project_id, job_id=job_id, issued_at=now, actor="timer",
                    awaits_outcome=False,
                    run_ids=run_ids[start:start + RUNS_PER_COMMAND])
                await send_command(job_id.encode(), encode_command(command))
                sent += 1
        except Exception as exc:  # one job's bad state must not stop the timer
            letter = dead_letter("timer", exc, "skipped by the timer this tick", key=job_id)
            await send_letter(job_id.encode(), encode_dead_letter(letter))
    return sent
