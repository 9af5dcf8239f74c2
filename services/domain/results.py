"""What a decision returns: the events it appends, each with the run it is about, or a
rejection with its reason."""

from typing import Literal

import msgspec

from events.types import Event

RejectionCode = Literal["not_found", "conflict", "invalid"]


class Rejection(msgspec.Struct, frozen=True):
    code: RejectionCode
    reason: str


class Duplicate(msgspec.Struct, frozen=True):
    """A trigger whose idempotency key names a run triggered within the job's dedup
    window: the caller gets that run, and nothing happens."""

    run_id: str


# An event and the run it is about (None for an event about the job itself).
RunEvent = tuple[str | None, Event]
