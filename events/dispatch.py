"""Records on the dispatch topic: one attempt of one run, for an executor to carry out."""

from datetime import datetime
from typing import Any, Literal

import msgspec


class DispatchOrder(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Everything an executor needs to call the endpoint, without reading any state.
    Fields at their defaults are left out of the record (a plain attempt's order is a
    third smaller), and read back as the defaults."""

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
    # When the processor dispatched the attempt (the start of its trace's queue wait).
    dispatched_at: datetime | None = None
    # "attempt": call the endpoint with the payload. "cancel": the attempt was asked to
    # stop; the executor stops waiting for it and POSTs a cancel notice to the endpoint.
    # "webhook": deliver ``payload`` to ``endpoint_url`` (the job's webhook_url), signed
    # with the sealed secret, as message ``message_id``.
    kind: Literal["attempt", "cancel", "webhook"] = "attempt"
    reason: str | None = None
    message_id: str | None = None
    event_type: str | None = None
    secret_sealed: str | None = None

    @property
    def idempotency_key(self) -> str:
        # Stable across redeliveries of the same attempt, so endpoints can deduplicate.
        return f"{self.run_id}:{self.attempt}"

    @property
    def work_key(self) -> str:
        """What the executor carries out once: the attempt, or its cancel notice."""
        key = self.idempotency_key
        if self.kind == "webhook":
            return f"webhook:{self.message_id}"
        return key if self.kind == "attempt" else f"{key}:{self.kind}"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DispatchOrder)


def encode_dispatch(order: DispatchOrder) -> bytes:
    return _encoder.encode(order)


def decode_dispatch(raw: bytes) -> DispatchOrder:
    return _decoder.decode(raw)
