"""What a ``payload_schema`` may be: ``check_schema``, its limits, and the errors.

- A valid JSON Schema, draft 2020-12 (the 2020-12 meta-schema; ``$schema``, if present,
  must name 2020-12 and stand at the root). ``format`` is an annotation only, never
  asserted.
- Self-contained: every ``$ref`` / ``$dynamicRef`` must start with ``#`` and resolve to a
  subschema of this document (a JSON pointer to a place the 2020-12 vocabulary treats as
  a schema, or a ``$anchor`` / ``$dynamicAnchor``). Each one is also resolved through
  ``_REGISTRY``, whose retrieve refuses everything, the same registry the validator uses,
  so nothing is ever fetched (no https://, no file://).
- ``$id`` only at the root. There it is just the document's name: as every reference
  starts with ``#`` it resolves against that name, i.e. to this document. Embedded
  resources (``$id`` in subschemas) are refused: they would re-base references.
- Every ``pattern`` and ``patternProperties`` key must compile with RE2 (see ``regex``):
  the reason for a refusal says so and names the path.
- Bounded: JSON nesting depth <= 64, <= 2,000 subschemas, <= 500 patterns of <= 4,096
  characters each (RE2 also refuses programs that are too big, e.g. ``\\p{L}{1,1000}``).

``check_schema`` is linear in the schema's size but not free: compiling one RE2 pattern
such as ``^.{0,1000}$`` takes ~6 ms, and a document of ~2,000 subschemas with 500 patterns
took 0.6 s, so request handlers should call ``check_schema_async`` (the same checks, in a
worker process, within a budget).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote

import re2
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from services.api.payload_schema.regex import _compile

MAX_DEPTH = 64
MAX_SUBSCHEMAS = 2_000
MAX_PATTERNS = 500
MAX_PATTERN_CHARS = 4_096
MAX_TEXT = 400             # reasons and paths are clipped to this many characters

_DIALECTS = {"https://json-schema.org/draft/2020-12/schema",
             "https://json-schema.org/draft/2020-12/schema#"}

# The places where draft 2020-12 holds subschemas (as referencing's DRAFT202012).
_IN_VALUE = ("additionalProperties", "contains", "contentSchema", "else", "if", "items",
             "not", "propertyNames", "then", "unevaluatedItems", "unevaluatedProperties")
_IN_SUBARRAY = ("allOf", "anyOf", "oneOf", "prefixItems")
_IN_SUBVALUES = ("$defs", "definitions", "dependentSchemas", "patternProperties",
                 "properties")


class SchemaRefused(ValueError):
    """``payload_schema`` is not acceptable; ``path`` is like ``payload_schema/properties/a``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class PayloadInvalid(ValueError):
    """The payload does not match; ``path`` is like ``payload/items/0/name``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ValidatorUnavailable(RuntimeError):
    """No worker could take the validation in time (overload, or workers cannot start)."""


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    """At most ``limit`` characters, keeping the head and the tail (where jsonschema's
    messages say what is wrong, after a repr of the instance)."""
    if len(text) <= limit:
        return text
    tail = limit // 3
    return text[:limit - tail - 1] + "…" + text[-tail:]


def _join(prefix: str, segments: Iterable[Any]) -> str:
    return _clip("/".join([prefix, *(str(s) for s in segments)]))


def _pattern_refusal(pattern: str) -> str | None:
    """Why RE2 refuses ``pattern``, or None when it compiles."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"pattern longer than {MAX_PATTERN_CHARS} characters"
    try:
        _compile(pattern)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return (f"pattern {_clip(repr(pattern), 120)} is not supported by the linear-time "
                f"regex engine (RE2; it refuses backreferences and lookaround, and "
                f"programs that are too large): {detail}")
    return None


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


_REGISTRY: referencing.Registry[Any] = referencing.Registry(
    retrieve=_refuse_retrieval)  # type: ignore[call-arg]

_META_FORMATS = copy.copy(Draft202012Validator.FORMAT_CHECKER)
# "regex" is judged by RE2 below, with a better message than "is not a 'regex'"
_META_FORMATS.checkers = {name: check for name, check in _META_FORMATS.checkers.items()
                          if name != "regex"}
_META_VALIDATOR = Draft202012Validator(Draft202012Validator.META_SCHEMA,
                                       format_checker=_META_FORMATS)


def _check_depth(document: Any) -> None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SchemaRefused("payload_schema", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)


def _children(node: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    for keyword in _IN_VALUE:
        if keyword in node:
            yield (keyword,), node[keyword]
    for keyword in _IN_SUBARRAY:
        value = node.get(keyword)
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield (keyword, str(index)), item
    for keyword in _IN_SUBVALUES:
        value = node.get(keyword)
        if isinstance(value, dict):
            for name, item in value.items():
                yield (keyword, name), item


def _subschemas(schema: Any) -> dict[tuple[str, ...], Any]:
    """Every place of the document that is a schema, by JSON pointer segments."""
    found: dict[tuple[str, ...], Any] = {}
    stack: list[tuple[tuple[str, ...], Any]] = [((), schema)]
    while stack:
        location, node = stack.pop()
        if not isinstance(node, dict | bool):
            continue   # the meta-schema check reports it
        found[location] = node
        if len(found) > MAX_SUBSCHEMAS:
            raise SchemaRefused("payload_schema", f"more than {MAX_SUBSCHEMAS} subschemas")
        if isinstance(node, dict):
            stack.extend((location + segments, child) for segments, child in _children(node))
    return found


def _check_meta(schema: Any) -> None:
    error = best_match(_META_VALIDATOR.iter_errors(schema))
    if error is not None:
        raise SchemaRefused(_join("payload_schema", error.absolute_path),
                            "not a valid JSON Schema (draft 2020-12): " + _clip(error.message))


def _pointer(fragment: str) -> tuple[str, ...]:
    return tuple(s.replace("~1", "/").replace("~0", "~") for s in fragment[1:].split("/"))


def check_schema(schema: Any) -> None:
    """Refuse (``SchemaRefused``) what cannot be applied safely; see this module's docstring.

    Linear in the schema's size, but may take tens of ms for big schemas: in a request
    handler prefer ``check_schema_async``."""
    if not isinstance(schema, dict | bool):
        raise SchemaRefused("payload_schema", "must be a JSON object or a boolean")
    _check_depth(schema)
    places = _subschemas(schema)
    _check_meta(schema)
    if isinstance(schema, bool):
        return

    anchors: dict[str, tuple[str, ...]] = {}
    refs: list[tuple[tuple[str, ...], str, str]] = []
    patterns: list[tuple[tuple[str, ...], str]] = []
    for location, node in places.items():
        if not isinstance(node, dict):
            continue
        if "$schema" in node:
            if location:
                raise SchemaRefused(_join("payload_schema", (*location, "$schema")),
                                    "$schema is allowed only at the root")
            if node["$schema"] not in _DIALECTS:
                raise SchemaRefused("payload_schema/$schema",
                                    "only draft 2020-12 "
                                    "(https://json-schema.org/draft/2020-12/schema) is supported")
        if "$id" in node and location:
            raise SchemaRefused(_join("payload_schema", (*location, "$id")),
                                "$id is allowed only at the root (embedded schema resources "
                                "are not supported)")
        for keyword in ("$anchor", "$dynamicAnchor"):
            name = node.get(keyword)
            if isinstance(name, str):
                if anchors.setdefault(name, location) != location:
                    raise SchemaRefused(_join("payload_schema", (*location, keyword)),
                                        f"anchor {_clip(repr(name), 80)} is defined twice")
        for keyword in ("$ref", "$dynamicRef"):
            ref = node.get(keyword)
            if isinstance(ref, str):
                refs.append((location, keyword, ref))
        if isinstance(node.get("pattern"), str):
            patterns.append(((*location, "pattern"), node["pattern"]))
        if isinstance(node.get("patternProperties"), dict):
            patterns.extend(((*location, "patternProperties", key), key)
                            for key in node["patternProperties"])

    resolver = _REGISTRY.resolver_with_root(
        referencing.jsonschema.DRAFT202012.create_resource(schema))
    for location, keyword, ref in refs:
        path = _join("payload_schema", (*location, keyword))
        if not ref.startswith("#"):
            raise SchemaRefused(path, f"{_clip(repr(ref), 120)}: only references into "
                                      "payload_schema itself (starting with '#') are allowed")
        fragment = unquote(ref[1:])
        if fragment.startswith("/"):
            found = _pointer(fragment) in places
        else:
            found = fragment == "" or fragment in anchors
        if found:
            try:
                resolver.lookup(ref)
            except Exception:
                found = False
        if not found:
            raise SchemaRefused(path, f"{_clip(repr(ref), 120)} does not resolve to a "
                                      "subschema of payload_schema")

    if len(patterns) > MAX_PATTERNS:
        raise SchemaRefused("payload_schema", f"more than {MAX_PATTERNS} patterns")
    for location, pattern in patterns:
        reason = _pattern_refusal(pattern)
        if reason is not None:
            raise SchemaRefused(_join("payload_schema", location), reason)
