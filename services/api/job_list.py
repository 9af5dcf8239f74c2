"""GET /v1/jobs: the key's project's jobs, newest first, filtered, a keyset page at a time.

The cursor is opaque to clients: the (created_at, id) of the page's last job, encoded."""

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromQuery, Parameter

from projections.queries import JobFilters, list_jobs
from schemas.api import JobPage
from services.api.auth import caller_of
from services.api.context import ApiContext
from services.api.cursors import cursor_of, position_of
from services.api.errors import invalid
from services.api.jobs import job_response

MAX_TAG_FILTERS = 10


def _tag_filters(tags: list[str]) -> list[tuple[str, str]]:
    if len(tags) > MAX_TAG_FILTERS:
        raise invalid("tag", f"at most {MAX_TAG_FILTERS} tag filters")
    pairs = []
    for tag in tags:
        key, sep, value = tag.partition(":")
        if not sep or not key:
            raise invalid("tag", f"{tag[:64]!r} is not key:value")
        pairs.append((key, value))
    return pairs


@get("/v1/jobs", summary="List jobs")
async def list_jobs_route(
    request: Request[Any, Any, Any],
    enabled: FromQuery[bool | None] = None,
    tag: Annotated[list[str] | None, Parameter(
        description="key:value; repeat to require several (AND)",
        max_items=MAX_TAG_FILTERS)] = None,
    group: Annotated[str | None, Parameter(max_length=64)] = None,
    environment: Annotated[str | None, Parameter(max_length=64)] = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=400)] = None,
) -> JobPage:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    filters = JobFilters(enabled=enabled, tags=_tag_filters(tag or []), group_id=group,
                         environment_id=environment)
    after = None if cursor is None else position_of(cursor)
    views = await list_jobs(ctx.engine, key.project_id, filters, after, limit + 1)
    more = len(views) > limit
    views = views[:limit]
    last = views[-1] if more else None
    return JobPage(data=[job_response(v) for v in views], has_more=more,
                   next_cursor=None if last is None else cursor_of(last.created_at, last.id))


__all__ = ["list_jobs_route"]
