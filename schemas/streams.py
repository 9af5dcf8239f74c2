"""What the live streams send: one applied event per server-sent event."""

from schemas.api import RunEventResponse


class StreamEvent(RunEventResponse, kw_only=True):
    """An event as ``GET /v1/runs/{id}/events`` shows it, plus its job and its
    ``position`` (the project-wide order the read models applied it in; the id of
    ``GET /v1/events/stream``). ``seq`` is the id of ``GET /v1/runs/{id}/stream``."""

    position: int
    job_id: str
