"""How the processor's table values are stored: msgpack bytes, one decoder per type.

Encoding happens while a command is decided, before anything is written, so a state that
cannot be stored makes its command a rejection instead of failing half way.
"""

import msgspec

from services.domain import JobState, KeyState, RunState
from services.domain.pacing import RateCounter
from services.domain.state import Answer, DedupRecord

_job_decoder = msgspec.msgpack.Decoder(JobState)
_run_decoder = msgspec.msgpack.Decoder(RunState)
_answer_decoder = msgspec.msgpack.Decoder(Answer)
_key_decoder = msgspec.msgpack.Decoder(KeyState)
_dedup_decoder = msgspec.msgpack.Decoder(DedupRecord)
_rate_decoder = msgspec.msgpack.Decoder(RateCounter)
_encoder = msgspec.msgpack.Encoder()

encode_state = _encoder.encode


def decode_job(raw: bytes) -> JobState:
    return _job_decoder.decode(raw)


def decode_run(raw: bytes) -> RunState:
    return _run_decoder.decode(raw)


def decode_answer(raw: bytes) -> Answer:
    return _answer_decoder.decode(raw)


def decode_key(raw: bytes) -> KeyState:
    return _key_decoder.decode(raw)


def decode_dedup(raw: bytes) -> DedupRecord:
    return _dedup_decoder.decode(raw)


def dedup_id(job_id: str, idempotency_key: str) -> str:
    """A dedup record's table key (they share the answers table, whose command ids hold
    no control characters)."""
    return f"idem\x1f{job_id}\x1f{idempotency_key}"


def decode_rate(raw: bytes) -> RateCounter:
    return _rate_decoder.decode(raw)


def rate_id(job_id: str, name: str, value: str) -> str:
    """A rate-key counter's table key (in the answers table too; metadata values hold no
    control characters)."""
    return f"rate\x1f{job_id}\x1f{name}\x1f{value}"


def key_id(job_id: str, key: str) -> str:
    """A key record's table key: tokens hold no control characters, so no clash."""
    return f"{job_id}\x1f{key}"
