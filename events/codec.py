"""JSON codec for events on the log.

The envelope is decoded first with the body left raw, so a type this build does not know
(written by a newer producer) is skipped with a warning instead of stopping a consumer.
"""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from events.envelope import Envelope
from events.types import EVENT_TYPES, Event

log = logging.getLogger(__name__)

# (type, old version) -> function turning that version's JSON object into the next one's.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class _WireEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    type: str
    version: int
    project_id: str
    job_id: str
    seq: int
    occurred_at: datetime
    command_id: str
    data: msgspec.Raw
    run_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    producer: str = "jobledger.processor"


class DecodedEvent(msgspec.Struct, frozen=True):
    envelope: Envelope
    event: Event


_wire_decoder = msgspec.json.Decoder(_WireEvent)
_encoder = msgspec.json.Encoder()
_body_decoders = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()}


def encode_event(envelope: Envelope, event: Event) -> bytes:
    fields = msgspec.structs.asdict(envelope)
    fields["data"] = msgspec.Raw(_encoder.encode(event))
    return _encoder.encode(_WireEvent(**fields))


def decode_event(raw: bytes) -> DecodedEvent | None:
    """Decode one record; None (with a warning) for a type or version this build can't read."""
    wire = _wire_decoder.decode(raw)
    body_type = EVENT_TYPES.get(wire.type)
    if body_type is None:
        log.warning("skipping event %s of unknown type %r", wire.event_id, wire.type)
        return None
    data: bytes = bytes(wire.data)
    version = wire.version
    if version > body_type.VERSION:
        log.warning("skipping event %s: %s v%d is newer than this build reads (v%d)",
                    wire.event_id, wire.type, version, body_type.VERSION)
        return None
    if version < body_type.VERSION:
        obj = msgspec.json.decode(data)
        while version < body_type.VERSION:
            obj = UPCASTERS[(wire.type, version)](obj)
            version += 1
        event = msgspec.convert(obj, body_type)
    else:
        event = _body_decoders[wire.type].decode(data)
    fields = msgspec.structs.asdict(wire)
    del fields["data"]
    fields["version"] = version
    return DecodedEvent(Envelope(**fields), event)  # type: ignore[arg-type]
