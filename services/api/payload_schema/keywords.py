"""The validator: jsonschema's draft 2020-12 with RE2 and a linear ``uniqueItems``.

``_Validator`` is ``Draft202012Validator`` with these keywords replaced:

- ``pattern``, ``patternProperties``, ``additionalProperties``, ``unevaluatedProperties``:
  the regex-using keywords, following jsonschema 4.26's ``_keywords`` / ``_utils`` with
  ``re.search`` replaced by RE2's (``regex._search``), so no pattern is ever run by
  Python's backtracking ``re``.
- ``uniqueItems``: a linear hash of a canonical form of each item instead of jsonschema's
  O(n^2) comparison of unhashable items (same equality: ``1 == 1.0``, ``true != 1``, key
  order irrelevant).

It runs only in the worker processes (see ``worker``), which build one per schema
with ``rules._REGISTRY`` so no reference is ever fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import extend

from services.api.payload_schema.regex import _search


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(validator: Any, pattern_properties: dict[str, Any], instance: Any,
                        schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for key in instance:
        if key not in properties and not any(_search(p, key) for p in patterns):
            yield key


def _additional_properties(validator: Any, ap: Any, instance: Any,
                           schema: dict[str, Any]) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    extras = set(_additional(instance, schema))
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif not ap and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            names = sorted(extras, key=str)
            verb = "was" if len(names) == 1 else "were"
            yield ValidationError("Additional properties are not allowed "
                                  f"({', '.join(repr(n) for n in names)} {verb} unexpected)")


def _is_valid(errors: Iterator[Any]) -> bool:
    return next(errors, None) is None


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> list[str]:
    if validator.is_type(schema, "boolean"):
        return []
    keys: list[str] = []
    for keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(keyword)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            keys += _evaluated_keys(
                validator.evolve(schema=resolved.contents, _resolver=resolved.resolver),
                instance, resolved.contents)
    properties = schema.get("properties")
    if validator.is_type(properties, "object"):
        keys += properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if (subschema := schema.get(keyword)) is not None:
            keys += (key for key, value in instance.items()
                     if _is_valid(validator.descend(value, subschema)))
    if "patternProperties" in schema:
        for key in instance:
            for pattern in schema["patternProperties"]:
                if _search(pattern, key):
                    keys.append(key)
    if "dependentSchemas" in schema:
        for key, subschema in schema["dependentSchemas"].items():
            if key in instance:
                keys += _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _is_valid(validator.descend(instance, subschema)):
                keys += _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys += _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys += _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys += _evaluated_keys(validator, instance, schema["else"])
    return keys


def _unevaluated_properties(validator: Any, unevaluated: Any, instance: Any,
                            schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = set(_evaluated_keys(validator, instance, schema))
    bad = [key for key in instance if key not in evaluated
           and not _is_valid(validator.descend(instance[key], unevaluated, path=key,
                                               schema_path=key))]
    if bad:
        verb = "was" if len(bad) == 1 else "were"
        if unevaluated is False:
            names = ", ".join(repr(n) for n in sorted(bad, key=str))
            yield ValidationError(f"Unevaluated properties are not allowed ({names} {verb} "
                                  "unexpected)")
        else:
            names = ", ".join(repr(n) for n in bad)
            yield ValidationError("Unevaluated properties are not valid under the given "
                                  f"schema ({names} {verb} unevaluated and invalid)")


def _canonical(value: Any) -> Any:
    """A hashable form with JSON Schema equality (1 == 1.0, true != 1, keys unordered)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list | tuple):
        return ("a", tuple(_canonical(item) for item in value))
    if isinstance(value, dict):
        return ("o", frozenset((key, _canonical(item)) for key, item in value.items()))
    if value is None:
        return ("z",)
    return ("?", repr(value))


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if unique and validator.is_type(instance, "array"):
        seen: set[Any] = set()
        for item in instance:
            key = _canonical(item)
            if key in seen:
                yield ValidationError(f"{instance!r} has non-unique elements")
                return
            seen.add(key)


_Validator: Any = extend(Draft202012Validator, validators={
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
    "uniqueItems": _unique_items,
})
