"""Records on the dispatch topic: one attempt of one run, for an executor to carry out."""

from typing import Any

import msgspec


class DispatchOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Everything an executor needs to call the endpoint, without reading any state."""

    run_id: str
    job_id: str
    project_id: str
    attempt: int
    endpoint_url: str
    timeout_secs: int
    payload: Any = None
    fallback_endpoint_url: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    # Sent to the endpoint as ``X-Debug-Mode: true`` (the trigger's debug_mode).
    debug_mode: bool = False

    @property
    def idempotency_key(self) -> str:
        # Stable across redeliveries of the same attempt, so endpoints can deduplicate.
        return f"{self.run_id}:{self.attempt}"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DispatchOrder)


def encode_dispatch(order: DispatchOrder) -> bytes:
    return _encoder.encode(order)


def decode_dispatch(raw: bytes) -> DispatchOrder:
    return _decoder.decode(raw)
