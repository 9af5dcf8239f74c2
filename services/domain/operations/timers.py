"""FireDueTimers: requeue the named runs whose retry or scheduled start is due, expire
the named never-started runs past their TTL, and time out the named attempts past their
report deadline (or, accepted, past their timeout), crash the named accepted attempts
whose heartbeats stopped, and end the named canceling attempts past their cancel
deadline. A named run that is no longer due is left alone: the timer may ask about a run
twice."""

from datetime import datetime

from events.types import AttemptFailure, RunCanceled, RunCrashed, RunExpired, RunRequeued
from services.domain.commands import FireDueTimers
from services.domain.operations.cancel import stopped
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
            events.append((rid, RunCanceled(reason=DELETED, by_system=True,
                                            code="JOB_SYSTEM_CANCELED")))
        elif run.status is RunStatus.DELAYED:
            events.append((rid, RunRequeued(next_attempt=run.attempt + 1)))
        elif (run.status is RunStatus.RUNNING and run.heartbeat_due_at is not None
              and run.heartbeat_due_at <= now):
            # The endpoint took the attempt and went silent: a zombie, not a slow call.
            events.append((rid, RunCrashed(attempt=run.attempt,
                                           heartbeat_due_at=run.heartbeat_due_at)))
        elif run.status is RunStatus.CANCELING:
            events.append(stopped(run, "no acknowledgement by the cancel deadline"))
        else:
            why = ("the endpoint did not report the accepted attempt by its timeout"
                   if run.accepted else "no report from an executor by the attempt's "
                   "deadline")
            lost = AttemptFailure(kind="timeout", message=f"{why} {at.isoformat()}")
            events += attempt_failed(state, run, lost, now)
    return events
