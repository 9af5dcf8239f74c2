"""GET /v1/jobs: the key's project's jobs, newest first, filtered, a page at a time.

Pages by keyset (``cursor``: opaque to clients, the (created_at, id) of the page's last
job, encoded) or by ``offset`` (simple, but a page may shift while jobs are made)."""

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromQuery, Parameter

from projections.job_search import MAX_QUERY_WORDS, query_words
from projections.queries import JobFilters, list_jobs
from schemas.api import JobPage
from services.api.auth import caller_of
from services.api.context import ApiContext
from services.api.cursors import cursor_of, position_of
from services.api.errors import invalid
from services.api.jobs import job_response

MAX_TAG_FILTERS = 10
MAX_OFFSET = 100_000


def _search_words(q: str | None) -> list[str]:
    if q is None:
        return []
    words = query_words(q)
    if not words:
        raise invalid("q", "a search needs at least one letter or digit")
    if len(words) > MAX_QUERY_WORDS:
        raise invalid("q", f"at most {MAX_QUERY_WORDS} words")
    return words


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
    q: Annotated[str | None, Parameter(
        description="words that each begin a word of the name or slug (any case)",
        max_length=200)] = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=400)] = None,
    offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET)] = 0,
) -> JobPage:
    key = caller_of(request)
    ctx: ApiContext = request.app.state.ctx
    if cursor is not None and offset:
        raise invalid("offset", "page by cursor or by offset, not both")
    filters = JobFilters(enabled=enabled, tags=_tag_filters(tag or []), group_id=group,
                         environment_id=environment, words=_search_words(q))
    after = None if cursor is None else position_of(cursor)
    views = await list_jobs(ctx.engine, key.project_id, filters, after, limit + 1, offset)
    more = len(views) > limit
    views = views[:limit]
    last = views[-1] if more else None
    return JobPage(data=[job_response(v) for v in views], has_more=more,
                   next_cursor=None if last is None else cursor_of(last.created_at, last.id))


__all__ = ["list_jobs_route"]
