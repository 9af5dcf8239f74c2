"""DELETE /v1/jobs/{id_or_slug}: the job is gone for reads and commands; its runs and
their history stay readable.

Its queued runs are canceled ("job deleted") in chunks: the route sends
``CancelWaitingRuns`` after the delete until a chunk comes back short, each command
canceling at most ``DRAIN_CHUNK`` runs (its cost never grows with the backlog). If the
route stops early (a crash, the bound below), the rest still never start: a deleted job
dispatches nothing, and any later command of the job cancels another chunk.
"""

from datetime import UTC, datetime
from typing import Any

from litestar import Request, delete
from litestar.params import FromPath

from services.api.auth import caller_of
from services.api.context import ApiContext
from services.api.ids import new_command_id
from services.api.jobs import find_job
from services.domain import CancelWaitingRuns, DeleteJob
from services.domain.operations.delete_job import DRAIN_CHUNK

# Chunks one request sends at most (500,000 queued runs); see the module's doc.
MAX_DRAIN_COMMANDS = 1000


@delete("/v1/jobs/{job_id:str}", status_code=204, summary="Delete a job")
async def delete_job(request: Request[Any, Any, Any], job_id: FromPath[str]) -> None:
    key = caller_of(request, "operator")
    ctx: ApiContext = request.app.state.ctx
    job = await find_job(ctx, key, job_id, fresh=True)
    actor = key.project_id + ":" + key.role
    outcome = await ctx.execute(DeleteJob(command_id=new_command_id(),
                                          project_id=key.project_id, job_id=job.id,
                                          issued_at=datetime.now(UTC), actor=actor))
    ctx.jobs.forget(key.project_id, job_id)
    seq = outcome.seq
    for _ in range(MAX_DRAIN_COMMANDS):
        # Each canceled run is one event: the seq says how many this chunk canceled.
        drained = await ctx.accepted(CancelWaitingRuns(
            command_id=new_command_id(), project_id=key.project_id, job_id=job.id,
            issued_at=datetime.now(UTC), actor="system"))
        canceled, seq = drained.seq - seq, drained.seq
        if canceled < DRAIN_CHUNK:
            break
    await ctx.watcher.wait_for(job.id, seq, ctx.settings.command_wait_secs)


__all__ = ["delete_job"]
