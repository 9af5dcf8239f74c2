"""The processor's answer to one command, on the outcomes topic, for the API to wait on."""

import msgspec

from services.domain.state import ItemAnswer


class CommandOutcome(msgspec.Struct, frozen=True, kw_only=True):
    command_id: str
    job_id: str
    # The job's seq after the command: the projection shows the command's effect once it has
    # applied this seq for the job.
    seq: int
    run_id: str | None = None
    rejected: bool = False
    code: str | None = None
    reason: str | None = None
    # A trigger answered with the run its idempotency key already made (``run_id``).
    idempotency_hit: bool = False
    # A bulk trigger's items, in order.
    items: list[ItemAnswer] | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CommandOutcome)


def encode_outcome(outcome: CommandOutcome) -> bytes:
    return _encoder.encode(outcome)


def decode_outcome(raw: bytes) -> CommandOutcome:
    return _decoder.decode(raw)
