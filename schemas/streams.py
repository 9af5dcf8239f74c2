"""What the live streams send: one applied event per server-sent event."""

from datetime import datetime
from typing import Any

import msgspec


class StreamEvent(msgspec.Struct, kw_only=True):
    """An event as ``GET /v1/runs/{id}/events`` shows it, plus its job and its
    ``position`` (the project-wide order the read models applied it in; the id of
    ``GET /v1/events/stream``). ``seq`` is the id of ``GET /v1/runs/{id}/stream``."""

    position: int
    job_id: str
    seq: int
    type: str
    version: int
    event_id: str
    command_id: str
    run_id: str | None
    occurred_at: datetime
    data: dict[str, Any]
