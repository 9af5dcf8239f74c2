"""What the projector announces on ``<prefix>.projected`` after each committed batch.

One record per batch (key none, one partition, kept an hour): the last applied seq of
every job whose position the batch moved. A reader that waits for (job id, seq) to be
visible wakes when a notice names that job with a seq at least as high, and still polls
the database now and then: notices are fire and forget, so one may be lost (or merged
with the next when the broker is slow), which only delays a waiter until that poll.
"""

import msgspec


class Projected(msgspec.Struct, frozen=True, kw_only=True):
    positions: dict[str, int]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Projected)


def encode_projected(positions: dict[str, int]) -> bytes:
    return _encoder.encode(Projected(positions=positions))


def decode_projected(value: bytes) -> Projected:
    """Raises msgspec.DecodeError (a ValueError) for a record that is not a notice."""
    return _decoder.decode(value)
