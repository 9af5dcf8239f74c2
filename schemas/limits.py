"""Limits on every JSON value jobledger accepts, from a client or from an endpoint.

A value must survive the whole pipeline unchanged: the API decodes it, the processor keeps
it in its state (msgpack) and writes it into events (JSON), the projector stores it. So
integers must fit in 64 bits (msgpack's range), floats must be finite (JSON has no
infinity), and depth is bounded (deep nesting costs stack in every decoder on the way).
"""

import math
import re
from typing import Any

import msgspec

# Deep enough for any real document, shallow enough that no decoder on the way recurses
# anywhere near Python's limit.
MAX_JSON_DEPTH = 32
# The signed/unsigned range msgpack can carry: what the processor's state can store.
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**64 - 1


class JsonLimitExceeded(ValueError):
    """A JSON value outside the limits; ``path`` says where (``a/3/b``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or '(root)'}: {reason}")
        self.path, self.reason = path, reason


_msgpack = msgspec.msgpack.Encoder()
_json_decoder = msgspec.json.Decoder()
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
_BRACKETS_AND_QUOTES = b'"[]{}'
_OTHER_BYTES = bytes(b for b in range(256) if b not in _BRACKETS_AND_QUOTES)


def json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply the JSON text nests, counted up to ``limit + 1``, without decoding it.

    Only bytes operations (C speed): drop escaped backslashes and quotes, keep quotes and
    brackets, drop what is inside strings, then peel one level of empty pairs at a time.
    Meant for text that then goes to a real decoder: on invalid JSON the count is rough.
    """
    kept = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _OTHER_BYTES)
    brackets = b"".join(kept.split(b'"')[::2])
    depth = 0
    while brackets:
        if depth > limit:
            break
        peeled = _EMPTY_PAIR.sub(b"", brackets)  # one level: sub does not rescan its output
        if len(peeled) == len(brackets):
            # Unbalanced, so not JSON: the decoder will say so, unless what is left could
            # nest it deeper than the limit first.
            return depth + len(peeled) if len(peeled) > limit else depth
        brackets = peeled
        depth += 1
    return depth


def decode_json_within_limits(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON text and check it against the limits.

    Raises msgspec.DecodeError for text that is not JSON (or holds a number no float can
    hold) and JsonLimitExceeded for JSON beyond the limits.
    """
    if json_depth(raw, max_depth) > max_depth:
        raise JsonLimitExceeded("", f"nested deeper than {max_depth} levels")
    value = _json_decoder.decode(raw)
    try:
        _msgpack.encode(value)  # refuses ints outside 64 bits
    except OverflowError:
        _locate(value, max_depth, "")
    return value


def check_json_value(value: Any, max_depth: int = MAX_JSON_DEPTH, path: str = "") -> None:
    """Raise JsonLimitExceeded unless an already decoded ``value`` is within the limits.

    Walks the value in Python (iteratively, so any depth is safe); for JSON text prefer
    ``decode_json_within_limits``, which checks in C.
    """
    _locate(value, max_depth, path, found_nothing_ok=True)


def _locate(value: Any, max_depth: int, path: str, found_nothing_ok: bool = False) -> None:
    """Walk the whole value (iteratively) and raise for the first limit it breaks."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not MIN_JSON_INT <= item <= MAX_JSON_INT:
                raise JsonLimitExceeded(where, "integer out of the 64-bit range "
                                        f"[{MIN_JSON_INT}, {MAX_JSON_INT}]")
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise JsonLimitExceeded(where, "number is not finite")
            continue
        if depth >= max_depth:
            raise JsonLimitExceeded(where, f"nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            stack.extend((v, f"{where}/{k}" if where else str(k), depth + 1)
                         for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{where}/{i}" if where else str(i), depth + 1)
                         for i, v in enumerate(item))
        else:
            raise JsonLimitExceeded(where, f"{type(item).__name__} is not a JSON value")
    if not found_nothing_ok:
        raise JsonLimitExceeded(path, "not a storable JSON value")
