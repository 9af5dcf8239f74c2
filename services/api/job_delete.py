"""DELETE /v1/jobs/{id_or_slug}: the job is gone for reads and commands; its runs and
their history stay readable.

Its queued runs are canceled ("job deleted") by the processor, in chunks: the delete
cancels the first ``DRAIN_CHUNK``, and while queued runs are left the job is due on the
processor's timer at once, each wake-up canceling the next chunk (the cost of one command
never grows with the backlog). Nothing of a deleted job starts meanwhile.
"""

from datetime import UTC, datetime
from typing import Any

from litestar import Request, delete
from litestar.params import FromPath

from services.api.auth import caller_of
from services.api.context import ApiContext
from services.api.ids import new_command_id
from services.api.jobs import find_job
from services.domain import DeleteJob


@delete("/v1/jobs/{job_id:str}", status_code=204, summary="Delete a job")
async def delete_job(request: Request[Any, Any, Any], job_id: FromPath[str]) -> None:
    key = caller_of(request, "operator")
    ctx: ApiContext = request.app.state.ctx
    job = await find_job(ctx, key, job_id, fresh=True)
    actor = key.project_id + ":" + key.role
    await ctx.execute(DeleteJob(command_id=new_command_id(), project_id=key.project_id,
                                job_id=job.id, issued_at=datetime.now(UTC), actor=actor))
    ctx.jobs.forget(key.project_id, job_id)


__all__ = ["delete_job"]
