"""What a decision returns: the events it appends, each with the run it is about, or a
rejection with its reason."""

from typing import Literal

import msgspec

from events.types import Event

RejectionCode = Literal["not_found", "conflict", "invalid"]


class Rejection(msgspec.Struct, frozen=True):
    code: RejectionCode
    reason: str


# An event and the run it is about (None for an event about the job itself).
RunEvent = tuple[str | None, Event]
