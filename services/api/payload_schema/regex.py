"""Regular expressions for ``pattern`` and ``patternProperties``: RE2, never ``re``.

RE2 is a linear-time engine (no backreferences, no lookaround), so no pattern can take
exponential time. JSON Schema patterns are ECMA-262; the ``\\uXXXX`` escapes RE2 lacks are
rewritten (``to_re2``). Matching uses search semantics (unanchored), as JSON Schema says;
RE2's ``$`` matches only at the end of the text, ``\\d`` and ``\\w`` are ASCII, as in
ECMA-262. Compiled programs are cached (LRU, 256), each limited to ``RE2_MAX_MEM``.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

RE2_MAX_MEM = 2 << 20

_HEX = frozenset("0123456789abcdefABCDEF")


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in _HEX for c in text)


def to_re2(pattern: str) -> str:
    """ECMA-262 escapes RE2 lacks, rewritten: ``\\uXXXX`` (and surrogate pairs),
    ``\\u{X...}`` -> ``\\x{...}``. Everything else is passed to RE2 unchanged."""
    if "\\u" not in pattern:
        return pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] != "\\" or i + 1 >= n:
            out.append(pattern[i])
            i += 1
            continue
        if pattern[i + 1] == "u":
            quad = pattern[i + 2:i + 6]
            if len(quad) == 4 and _is_hex(quad):
                cp, i = int(quad, 16), i + 6
                low = pattern[i + 2:i + 6]
                if (0xD800 <= cp <= 0xDBFF and pattern[i:i + 2] == "\\u" and len(low) == 4
                        and _is_hex(low) and 0xDC00 <= int(low, 16) <= 0xDFFF):
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (int(low, 16) - 0xDC00)
                    i += 6
                out.append(f"\\x{{{cp:X}}}")
                continue
            if pattern.startswith("{", i + 2):
                end = pattern.find("}", i + 3)
                if end != -1 and _is_hex(pattern[i + 3:end]):
                    out.append(f"\\x{{{pattern[i + 3:end]}}}")
                    i = end + 1
                    continue
        out.append(pattern[i:i + 2])
        i += 2
    return "".join(out)


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    options.max_mem = RE2_MAX_MEM
    return options


_OPTIONS = _re2_options()


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    """The RE2 program for ``pattern``; raises ``re2.error`` when RE2 refuses it."""
    return re2.compile(to_re2(pattern), _OPTIONS)


def _search(pattern: str, text: str) -> bool:
    # bytes: no offset bookkeeping, and lone surrogates (valid JSON) cannot fail to encode
    return _compile(pattern).search(text.encode("utf-8", "surrogatepass")) is not None
