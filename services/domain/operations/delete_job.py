"""DeleteJob: the job is gone for callers; its waiting runs must never start.

Queued runs are canceled in chunks, never all at once (that would grow with the
backlog): ``handle`` cancels the queued runs it loaded with every command of a deleted job
(``drain``; the processor loads a chunk for the delete itself and for every later
command), and while some are left the job is due on the processor's timer at once
(``job_due_at``), whose WakeJob cancels the next chunk. A delayed run whose retry comes
due is canceled instead of requeued (timers). Running runs may finish: their reports are
still taken. (``CancelWaitingRuns``, which the DELETE route used to send, is still
decided the same way for the commands of it on the log.)
"""

from events.types import JobDeleted, RunCanceled
from services.domain.commands import DeleteJob
from services.domain.results import RunEvent
from services.domain.state import Aggregate, RunStatus

REASON = "job deleted"
# The most queued runs of a deleted job one command loads and cancels.
DRAIN_CHUNK = 500


def decide_delete(command: DeleteJob) -> list[RunEvent]:
    return [(None, JobDeleted(by=command.actor))]


def drain(state: Aggregate) -> list[RunEvent]:
    """Cancel the queued runs of a deleted job that this command loaded."""
    if not state.job.deleted:
        return []
    return [(run.run_id, RunCanceled(reason=REASON, by_system=True,
                                         code="JOB_SYSTEM_CANCELED"))
            for run in sorted(state.runs.values(), key=lambda r: r.run_id)
            if run.status is RunStatus.QUEUED]
