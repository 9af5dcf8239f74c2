"""The dead-letter topic: every record a loop could not handle, with the reason.

Each loop (processor, projector, executor) that meets a record it cannot handle answers or
fails that record alone, writes it here with the error, and goes on. The topic is the
record of what was refused and why; its size is the poisoned-record count /readyz shows.
"""

import logging
import traceback
from datetime import UTC, datetime
from typing import Literal

import msgspec

log = logging.getLogger(__name__)

Source = Literal["processor", "projector", "executor", "timer"]


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    source: Source
    # Where the record came from; None when it was not read from a topic (the timer).
    topic: str | None
    partition: int | None
    offset: int | None
    key: str | None
    error: str  # exception type and message
    reason: str  # what was done about it ("rejected", "skipped", "attempt failed")
    at: datetime
    # The record itself, as text when it decodes as UTF-8 (bounded, to keep the topic small).
    value: str | None = None
    trace: str | None = None


MAX_VALUE_CHARS = 64 * 1024
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DeadLetter)


def dead_letter(source: Source, exc: BaseException, reason: str, *, topic: str | None = None,
                partition: int | None = None, offset: int | None = None,
                key: bytes | str | None = None, value: bytes | None = None) -> DeadLetter:
    text = None if value is None else value[:MAX_VALUE_CHARS].decode("utf-8", "replace")
    key_text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    trace = "".join(traceback.format_exception(exc, limit=8))[-4000:]
    letter = DeadLetter(source=source, topic=topic, partition=partition, offset=offset,
                        key=key_text, error=f"{type(exc).__name__}: {exc}"[:2000],
                        reason=reason, at=datetime.now(UTC), value=text, trace=trace)
    log.error("poisoned record (%s, %s[%s]@%s): %s; %s", source, topic, partition, offset,
              letter.error, reason)
    return letter


def encode_dead_letter(letter: DeadLetter) -> bytes:
    return _encoder.encode(letter)


def decode_dead_letter(raw: bytes) -> DeadLetter:
    return _decoder.decode(raw)
