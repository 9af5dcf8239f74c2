"""What the endpoint working on an attempt tells about it (its callbacks): it is alive,
how far it got, a message. Each is about one attempt; for any other attempt, or a run
no longer running, it is rejected (a late callback is never applied)."""

from datetime import datetime, timedelta

from events.types import RunHeartbeatRecorded, RunMessageLogged, RunProgressReported
from services.domain.commands import LogRunMessage, RecordHeartbeat, ReportProgress
from services.domain.operations.report import not_in_progress
from services.domain.results import Rejection, RunEvent
from services.domain.state import Aggregate, RunState, in_attempt

Callback = RecordHeartbeat | ReportProgress | LogRunMessage


def decide_callback(state: Aggregate, run: RunState, command: Callback,
                    now: datetime) -> list[RunEvent] | Rejection:
    if not in_attempt(run, command.attempt):
        return not_in_progress(run, command.attempt)
    match command:
        case RecordHeartbeat():
            assert state.job.spec is not None
            timeout = state.job.spec.heartbeat_timeout_secs
            # Only an accepted attempt is watched: while the executor still waits for
            # the answer, the attempt's timeout bounds it.
            due = (now + timedelta(seconds=timeout)
                   if timeout is not None and run.accepted else None)
            return [(run.run_id, RunHeartbeatRecorded(attempt=run.attempt,
                                                      heartbeat_due_at=due))]
        case ReportProgress():
            return [(run.run_id, RunProgressReported(attempt=run.attempt,
                                                     counters=dict(command.counters)))]
        case LogRunMessage():
            return [(run.run_id, RunMessageLogged(attempt=run.attempt, status=command.status,
                                                  text=command.text,
                                                  tool_id=command.tool_id))]
