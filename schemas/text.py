"""Constrained string and number types shared by the request bodies.

Constraints live in the types, so msgspec enforces them on decoding and the OpenAPI
document shows them. Patterns are written with escapes (not literal characters) so they
read the same in Python and in the ECMA-262 dialect of the published JSON Schema.
"""

from typing import Annotated

from msgspec import Meta

# C0 and C1 control characters, and the Unicode bidirectional controls (which can make a
# name display differently from what it is: "Trojan Source").
_UNSAFE = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Free text may also hold line breaks and tabs.
_UNSAFE_IN_TEXT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"

SAFE_LINE = rf"^[^{_UNSAFE}]*$"
SAFE_TEXT = rf"^[^{_UNSAFE_IN_TEXT}]*$"


def line(max_length: int, description: str | None = None, min_length: int = 0) -> Meta:
    """One line of text: no control or bidi characters."""
    return Meta(min_length=min_length, max_length=max_length, pattern=SAFE_LINE,
                description=description)


Name = Annotated[str, line(200, "display name; no control or bidi characters", 1)]
Description = Annotated[str, Meta(max_length=2000, pattern=SAFE_TEXT)]
Slug = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                           description="lowercase letters, digits, - and _; unique per project")]
Identifier = Annotated[str, Meta(min_length=1, max_length=64,
                                 pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Url = Annotated[str, Meta(min_length=10, max_length=2048, pattern=r"^https?://[^\s]+$",
                          description="http or https; the host must be a public address "
                                      "unless the operator allows its network")]
TagKey = Annotated[str, line(64, min_length=1)]
TagValue = Annotated[str, line(256)]
MetadataValue = Annotated[str, line(1024)]
Tags = Annotated[dict[TagKey, TagValue], Meta(max_length=50)]
Metadata = Annotated[dict[TagKey, MetadataValue], Meta(max_length=50)]
Token = Annotated[str, line(200, min_length=1)]
Reason = Annotated[str, line(500)]
Cron = Annotated[str, Meta(min_length=9, max_length=120, pattern=r"^[A-Za-z0-9*/,\- ?#LW]+$",
                           description="five-field cron expression")]
Timezone = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$",
                               description="an IANA time zone name, e.g. Europe/Paris")]

Attempts = Annotated[int, Meta(ge=1, le=100)]
TimeoutSecs = Annotated[int, Meta(ge=1, le=3600)]
DelaySecs = Annotated[int, Meta(ge=0, le=86400)]
Concurrency = Annotated[int, Meta(ge=1, le=10000)]
TtlSecs = Annotated[int, Meta(ge=1, le=31_536_000)]
Priority = Annotated[int, Meta(ge=-100, le=100)]
