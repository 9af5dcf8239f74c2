r"""Constrained string and number types shared by the request bodies.

Constraints live in the types, so msgspec enforces them on decoding and the OpenAPI
document shows them. Patterns are written with escapes (not literal characters) so they
read the same in Python and in the ECMA-262 dialect of the published JSON Schema, with
one exception: they end in ``\Z``, the end of the text, because Python's ``$`` also
matches before a final line break (so ``"abc\n"`` would pass as a slug). ECMA-262's
``$`` is the end of the text, so the published document says ``$`` (``published``).
"""

from typing import Annotated

from msgspec import Meta

# C0 and C1 control characters, and the Unicode bidirectional controls (which can make a
# name display differently from what it is: "Trojan Source").
_UNSAFE = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Free text may also hold line breaks and tabs.
_UNSAFE_IN_TEXT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"


def whole(body: str) -> str:
    r"""A pattern that ``body`` must match from the start to the very end of the text."""
    return rf"^{body}\Z"


def published(pattern: str) -> str:
    r"""The pattern as the JSON Schema (ECMA-262) writes it: ``\Z`` there is ``$``."""
    return pattern[:-2] + "$" if pattern.endswith(r"\Z") else pattern


SAFE_LINE = whole(rf"[^{_UNSAFE}]*")
SAFE_TEXT = whole(rf"[^{_UNSAFE_IN_TEXT}]*")


def line(max_length: int, description: str | None = None, min_length: int = 0) -> Meta:
    """One line of text: no control or bidi characters."""
    return Meta(min_length=min_length, max_length=max_length, pattern=SAFE_LINE,
                description=description)


Name = Annotated[str, line(200, "display name; no control or bidi characters", 1)]
Description = Annotated[str, Meta(max_length=2000, pattern=SAFE_TEXT)]
Slug = Annotated[str, Meta(pattern=whole(r"[a-z0-9][a-z0-9_-]{0,62}"),
                           description="lowercase letters, digits, - and _; unique per project")]
Identifier = Annotated[str, Meta(min_length=1, max_length=64,
                                 pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"))]
# An endpoint URL as RFC 3986 writes it (ASCII: an international host name in its xn--
# form, other characters percent-encoded), with the syntax services.addresses accepts: a
# host name whose last label is not a number, a canonical dotted-quad IPv4 address, or an
# IPv6 address in brackets; a port from 1 to 65535; no user name or password.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_LAST_LABEL = r"[A-Za-z](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_HOST = (rf"(?:(?:{_LABEL}\.)*{_LAST_LABEL}\.?|{_OCTET}(?:\.{_OCTET}){{3}}"
         r"|\[[0-9a-f:.]{2,45}\])")
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL_PATTERN = whole(rf"https?://{_HOST}(?::{_PORT})?(?:[/?#][!-~]*)?")

Url = Annotated[str, Meta(min_length=10, max_length=2048, pattern=URL_PATTERN,
                          description="http or https, ASCII only (an international host "
                                      "name in its xn-- form); the host must be a public "
                                      "address unless the operator allows its network")]
TagKey = Annotated[str, line(64, min_length=1)]
TagValue = Annotated[str, line(256)]
MetadataValue = Annotated[str, line(1024)]
Tags = Annotated[dict[TagKey, TagValue], Meta(max_length=50)]
Metadata = Annotated[dict[TagKey, MetadataValue], Meta(max_length=50)]
Token = Annotated[str, line(200, min_length=1)]
Reason = Annotated[str, line(500)]
_CRON_FIELD = r"[A-Za-z0-9*/,?#-]+"
Cron = Annotated[str, Meta(min_length=9, max_length=120,
                           pattern=whole(rf" *{_CRON_FIELD}(?: +{_CRON_FIELD}){{4}} *"),
                           description="five-field cron expression: minute hour "
                                       "day-of-month month day-of-week")]
Timezone = Annotated[str, Meta(min_length=1, max_length=64, pattern=whole(r"[A-Za-z0-9_+\-/]+"),
                               description="an IANA time zone name, e.g. Europe/Paris")]

Attempts = Annotated[int, Meta(ge=1, le=100)]
TimeoutSecs = Annotated[int, Meta(ge=1, le=3600)]
DelaySecs = Annotated[int, Meta(ge=0, le=86400)]
Concurrency = Annotated[int, Meta(ge=1, le=10000)]
TtlSecs = Annotated[int, Meta(ge=1, le=31_536_000)]
# How far ahead a run may be scheduled: a year.
StartDelaySecs = Annotated[int, Meta(ge=0, le=31_536_000)]
DedupWindowSecs = Annotated[int, Meta(ge=1, le=2_592_000, description="seconds (at most 30 "
                                      "days) in which a repeated idempotency_key gets the "
                                      "run it first made")]
Priority = Annotated[int, Meta(ge=-100, le=100)]
RateMax = Annotated[int, Meta(ge=1, le=100_000)]
RateWindowSecs = Annotated[int, Meta(ge=1, le=86_400)]
Secret = Annotated[str, line(256, "write-only, in the whsec_<base64 key> form of Standard "
                                  "Webhooks: answered masked, kept only sealed and as a SHA-256 "
                                  "fingerprint", 1)]
