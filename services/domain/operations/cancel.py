"""CancelRun: a waiting run ends at once; a running one is asked to stop first.

A running attempt turns ``canceling``: its executor stops waiting for the endpoint and
the endpoint is sent a cancel notice (the processor writes one on the dispatch topic);
the run ends ``canceled`` when either reports, or at the cancel deadline at the latest.
"""

from datetime import datetime, timedelta

from events.types import CancelCode, RunCanceled, RunCancelRequested
from services.domain.commands import CancelRun
from services.domain.results import Rejection, RunEvent
from services.domain.state import RunState, RunStatus

# How long a canceling attempt has to acknowledge before it counts as stopped.
CANCEL_GRACE_SECS = 30


def decide_cancel(run: RunState, command: CancelRun,
                  now: datetime) -> list[RunEvent] | Rejection:
    match run.status:
        case RunStatus.QUEUED | RunStatus.DELAYED:
            code: CancelCode = ("JOB_SYSTEM_CANCELED" if command.by_system
                                else "JOB_USER_CANCELED")
            return [(run.run_id, RunCanceled(reason=command.reason, by_system=command.by_system,
                                             code=code))]
        case RunStatus.RUNNING:
            deadline = now + timedelta(seconds=CANCEL_GRACE_SECS)
            if run.deadline_at is not None:
                deadline = min(deadline, run.deadline_at)
            return [(run.run_id, RunCancelRequested(reason=command.reason,
                                                    requested_by=command.actor,
                                                    deadline_at=deadline))]
        case RunStatus.CANCELING:
            return Rejection("conflict", f"run {run.run_id} is already canceling")
    return Rejection("conflict", f"run {run.run_id} is {run.status}: a finished run "
                                 "cannot be canceled")


def stopped(run: RunState, how: str) -> RunEvent:
    """A canceling run's end: its attempt stopped (``how``)."""
    return (run.run_id, RunCanceled(reason=f"canceled while running: {how}", by_system=True,
                                    code="JOB_SYSTEM_CANCELED"))
