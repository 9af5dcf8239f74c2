"""JSON codec for events on the log.

The envelope is decoded first with the body left raw, so a type this build does not know
(written by a newer producer) is skipped with a warning instead of stopping a consumer.
"""

import logging
from collections.abc import Callable
from typing import Any, cast

import msgspec

from events.envelope import Envelope
from events.types import EVENT_TYPES, Event

log = logging.getLogger(__name__)

# (type, old version) -> function turning that version's JSON object into the next one's.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class _WireEvent(Envelope, frozen=True, kw_only=True):
    """How an event is written: the envelope's fields plus the body as ``data``."""

    data: msgspec.Raw


class DecodedEvent(msgspec.Struct, frozen=True):
    envelope: Envelope
    event: Event


_wire_decoder = msgspec.json.Decoder(_WireEvent)
_encoder = msgspec.json.Encoder()
_body_decoders = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()}


def encode_event(envelope: Envelope, event: Event) -> bytes:
    fields = msgspec.structs.asdict(envelope)
    return _encoder.encode(_WireEvent(**fields, data=msgspec.Raw(_encoder.encode(event))))


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
    fields = {name: getattr(wire, name) for name in Envelope.__struct_fields__}
    fields["version"] = version
    # EVENT_TYPES maps each tag to its member of the Event union.
    return DecodedEvent(Envelope(**fields), cast(Event, event))
