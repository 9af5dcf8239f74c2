"""A job's dependencies: ``POST /v1/jobs/{B}/dependencies {depends_on: A, condition}``
makes B run after each run of A that ends as the condition says (on_success,
on_failure, on_completion). The edge is recorded on A's stream (A sees its runs end);
the API refuses an edge that would close a cycle, walking the graph in the read model."""

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, QueryParameter

from projections.dependencies import path_between, upstreams_of
from projections.queries import find_job as find_job_view
from schemas.api import DependencyPage, DependencyRequest, DependencyResponse
from services.api.auth import caller_of
from services.api.body import decode_body
from services.api.context import ApiContext
from services.api.errors import invalid
from services.api.ids import new_command_id
from services.api.jobs import NO_SUCH_JOB, find_job
from services.domain.commands import AddDependent, RemoveDependent


@post("/v1/jobs/{job_id:str}/dependencies", status_code=201,
      summary="Run this job after another job's runs")
async def add_dependency(request: Request[Any, Any, Any],
                         job_id: FromPath[str]) -> Response[DependencyResponse]:
    key = caller_of(request, "operator")
    data = await decode_body(request, DependencyRequest)
    ctx: ApiContext = request.app.state.ctx
    downstream = await find_job(ctx, key, job_id, fresh=True)
    upstream = await find_job_view(ctx.engine, key.project_id, data.depends_on)
    if upstream is None:
        # The body names it: a reference that does not hold, not a missing resource.
        raise invalid("depends_on", NO_SUCH_JOB)
    if upstream.id == downstream.id:
        raise invalid("depends_on", "a job cannot depend on itself")
    cycle = await path_between(ctx.engine, key.project_id, downstream.id, upstream.id)
    if cycle is not None:
        raise invalid("depends_on", "this would close a cycle: "
                                    + " -> ".join([*cycle, downstream.id]))
    await ctx.execute(AddDependent(command_id=new_command_id(), project_id=key.project_id,
                                   job_id=upstream.id, issued_at=datetime.now(UTC),
                                   actor=f"{key.project_id}:{key.role}",
                                   downstream_job_id=downstream.id, condition=data.condition),
                      location=f"/v1/jobs/{downstream.id}/dependencies")
    return Response(DependencyResponse(job_id=downstream.id, depends_on=upstream.id,
                                       condition=data.condition), status_code=201)


@get("/v1/jobs/{job_id:str}/dependencies", summary="The jobs this job runs after")
async def list_dependencies(request: Request[Any, Any, Any],
                            job_id: FromPath[str]) -> DependencyPage:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    job = await find_job(ctx, key, job_id, fresh=True)
    edges = await upstreams_of(ctx.engine, key.project_id, job.id)
    return DependencyPage(data=[DependencyResponse(job_id=job.id, depends_on=e.upstream_job_id,
                                                   condition=e.condition,
                                                   created_at=e.created_at) for e in edges],
                          has_more=False, next_cursor=None)


async def _remove(request: Request[Any, Any, Any], job_id: str, depends_on: str) -> None:
    key = caller_of(request, "operator")
    ctx: ApiContext = request.app.state.ctx
    downstream = await find_job(ctx, key, job_id, fresh=True)
    upstream = await find_job(ctx, key, depends_on, fresh=True)
    await ctx.execute(RemoveDependent(command_id=new_command_id(), project_id=key.project_id,
                                      job_id=upstream.id, issued_at=datetime.now(UTC),
                                      actor=f"{key.project_id}:{key.role}",
                                      downstream_job_id=downstream.id))


@delete("/v1/jobs/{job_id:str}/dependencies/{depends_on:str}", status_code=204,
        summary="Stop running this job after another job's runs")
async def remove_dependency(request: Request[Any, Any, Any], job_id: FromPath[str],
                            depends_on: FromPath[str]) -> None:
    await _remove(request, job_id, depends_on)


@delete("/v1/jobs/{job_id:str}/dependencies", status_code=204,
        summary="Remove the dependency named by ?depends_on=")
async def remove_dependency_by_query(
    request: Request[Any, Any, Any], job_id: FromPath[str],
    depends_on: Annotated[str, QueryParameter(min_length=1, max_length=64)],
) -> None:
    await _remove(request, job_id, depends_on)


DEPENDENCY_ROUTES = [add_dependency, list_dependencies, remove_dependency,
                     remove_dependency_by_query]
