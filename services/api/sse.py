"""Server-sent events framing and resume ids: pure functions, no I/O.

Each event is one SSE message: ``id`` (where a reconnecting client resumes), ``event`` (the
event's type, such as ``run.completed``, for ``addEventListener``) and one ``data`` line
(the event as JSON; msgspec writes no raw line breaks). A stream opens with a comment and
a ``retry`` hint, and an idle stream sends a ``: keep-alive`` comment now and then so that
proxies keep the connection open and a client that went away is noticed.
"""

import msgspec
from litestar.response import ServerSentEventMessage

from schemas.streams import StreamEvent
from services.api.errors import invalid

# How long a client waits before reconnecting (the ``retry`` field, milliseconds).
RETRY_MS = 3000
# The largest id taken: a BIGINT.
MAX_ID = 2**63 - 1
LAST_EVENT_ID = "Last-Event-ID"

_encoder = msgspec.json.Encoder()


def event_message(event_id: int, event: StreamEvent) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=_encoder.encode(event).decode(), event=event.type,
                                  id=event_id)


def opening_message() -> ServerSentEventMessage:
    return ServerSentEventMessage(data=None, comment="stream open", retry=RETRY_MS)


def keep_alive_message() -> ServerSentEventMessage:
    return ServerSentEventMessage(data=None, comment="keep-alive")


def parse_event_id(text: str, field: str = LAST_EVENT_ID) -> int:
    """An id this API handed out: a whole number from 0 to 2^63-1, digits only."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_ID:
        raise invalid(field, f"{text[:32]!r} is not an event id this stream sent (a whole "
                             "number of at most 19 digits)")
    return int(text)


def resume_point(header: str | None, after: int | None) -> int | None:
    """Where the client resumes: the Last-Event-ID header (what an EventSource sends when
    it reconnects, so it wins over a query that still holds the first request's value),
    else the ``after`` query parameter; None when neither is given."""
    if header is not None and header.strip():
        return parse_event_id(header)
    return after
