"""CancelRun: a waiting run ends at once; a running one is asked to stop first."""

from events.types import RunCanceled, RunCancelRequested
from services.domain.commands import CancelRun
from services.domain.results import Rejection, RunEvent
from services.domain.state import RunState, RunStatus


def decide_cancel(run: RunState, command: CancelRun) -> list[RunEvent] | Rejection:
    match run.status:
        case RunStatus.QUEUED | RunStatus.DELAYED:
            return [(run.run_id, RunCanceled(reason=command.reason))]
        case RunStatus.RUNNING:
            return [(run.run_id, RunCancelRequested(reason=command.reason,
                                                    requested_by=command.actor))]
        case RunStatus.CANCELING:
            return Rejection("conflict", f"run {run.run_id} is already canceling")
    return Rejection("conflict", f"run {run.run_id} is {run.status}: a finished run "
                                 "cannot be canceled")
