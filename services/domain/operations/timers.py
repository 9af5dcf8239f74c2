"""FireDueTimers: requeue the named runs whose retry or scheduled start is due, expire
the named never-started runs past their TTL, and time out the named attempts past their
report deadline. A named run that is no longer due is left alone:
the timer may ask about a run twice."""

from datetime import datetime

from events.types import AttemptFailure, RunCanceled, RunExpired, RunRequeued
from services.domain.commands import FireDueTimers
from services.domain.operations.delete_job import REASON as DELETED
from services.domain.operations.report import attempt_failed
from services.domain.results import RunEvent
from services.domain.state import Aggregate, RunStatus, timer_due_at


def decide_fire_timers(state: Aggregate, command: FireDueTimers,
                       now: datetime) -> list[RunEvent]:
    events: list[RunEvent] = []
    due = sorted((at, rid) for rid in set(command.run_ids)
                 if (run := state.runs.get(rid)) is not None
                 and (at := timer_due_at(run)) is not None and at <= now)
    for at, rid in due:
        run = state.runs[rid]
        if run.status is RunStatus.QUEUED:
            events.append((rid, RunExpired(expires_at=at)))
        elif run.status is RunStatus.DELAYED and state.job.deleted:
            events.append((rid, RunCanceled(reason=DELETED, by_system=True)))
        elif run.status is RunStatus.DELAYED:
            events.append((rid, RunRequeued(next_attempt=run.attempt + 1)))
        else:
            lost = AttemptFailure(kind="timeout", message="no report from an executor by "
                                  f"the attempt's deadline {at.isoformat()}")
            events += attempt_failed(state, run, lost, now)
    return events
