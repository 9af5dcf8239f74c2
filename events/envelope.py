"""The envelope every event travels in, kept apart from the event body."""

from datetime import datetime

import msgspec


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """Identity, ordering and provenance of one event.

    ``seq`` is gapless per job: consumers apply an event at most once by (job_id, seq).
    ``event_id`` is derived from the command and the event's position in its answer, so a
    processor that decides the same command twice after a crash writes the same event.
    """

    event_id: str
    type: str
    version: int
    project_id: str
    job_id: str
    seq: int
    occurred_at: datetime
    command_id: str
    run_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    producer: str = "jobledger.processor"
