"""Decode a request body strictly, within the JSON limits, into its request Struct.

Litestar's own body parsing converts leniently (``"3"`` for an int, ``0`` for a bool) and
runs before any handler code, so before authentication. Handlers therefore take the raw
body and call ``decode_body`` once the caller is known.
"""

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from schemas.api import ErrorDetail
from schemas.limits import MAX_JSON_DEPTH, JsonLimitExceeded, decode_json_within_limits
from schemas.text import SAFE_LINE, SAFE_TEXT
from services.api.errors import ApiError, invalid

T = TypeVar("T", bound=msgspec.Struct)

_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`")
_KEY_PATH = re.compile(r" - at `key` in `\$(?P<path>[^`]*)`")


# What a failed pattern means, for the patterns whose text would not tell a person.
_PATTERN_MEANINGS = {
    SAFE_LINE: "must not contain control characters, line breaks or bidirectional controls",
    SAFE_TEXT: "must not contain control characters or bidirectional controls",
}


def _plain(reason: str) -> str:
    for pattern, meaning in _PATTERN_MEANINGS.items():
        if repr(pattern) in reason:  # msgspec quotes the pattern as repr() does
            return meaning
    return reason


def _field_of(message: str) -> tuple[str, str]:
    """msgspec says ``Expected int, got str - at `$.a.b[0]` ``: split the field out."""
    for pattern, suffix in ((_KEY_PATH, " (a key)"), (_PATH, "")):
        match = pattern.search(message)
        if match:
            path = match["path"]
            if "[...]" in path:  # a value in an object; msgspec does not say which key
                path, suffix = path.split("[...]")[0], " (a value)"
            path = path.lstrip(".").replace("[", ".").replace("]", "")
            return path.replace(".", "/") + suffix, _plain(message[:match.start()])
    unknown = re.search(r"unknown field `([^`]*)`", message)
    if unknown:
        return unknown[1][:64], "unknown field (this API refuses fields it does not know)"
    missing = re.search(r"missing required field `([^`]*)`", message)
    if missing:
        return missing[1], "required"
    return "body", message


def decode_json(raw: bytes) -> Any:
    """Any JSON value within the limits, or ApiError naming where it breaks them."""
    try:
        return decode_json_within_limits(raw)
    except JsonLimitExceeded as exc:
        raise invalid(exc.path or "body", exc.reason) from None
    except RecursionError:  # not expected past the depth check; refused all the same
        raise invalid("body", f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except msgspec.ValidationError as exc:  # e.g. a number too large for a float
        raise invalid("body", str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", code="malformed_json",
                       details=[ErrorDetail(field="body", reason=str(exc))]) from None


def decode_as(value: Any, type_: type[T]) -> T:
    try:
        return msgspec.convert(value, type_, strict=True)
    except msgspec.ValidationError as exc:
        field, reason = _field_of(str(exc))
        raise invalid(field, reason) from None


async def decode_body(request: Request[Any, Any, Any], type_: type[T],
                      *, optional: bool = False) -> T:
    """The request's body as ``type_``; an empty body means the defaults if ``optional``."""
    raw = await request.body()
    if not raw.strip():
        if optional:
            return type_()
        raise invalid("body", "a JSON object is required")
    return decode_as(decode_json(raw), type_)
