"""The JSON limits every accepted value meets, and the strict body decoding built on them."""

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.api import CreateJobRequest, TriggerRunRequest
from schemas.limits import (
    MAX_JSON_DEPTH,
    JsonLimitExceeded,
    check_json_value,
    decode_json_within_limits,
    json_depth,
)
from services.api.body import decode_as, decode_json
from services.api.errors import ApiError

JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
                    | st.text() | st.floats(allow_nan=False, allow_infinity=False),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(), inner, max_size=3), max_leaves=30)


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@given(JSON)
def test_depth_from_bytes_matches_the_decoded_depth(value: object) -> None:
    raw = msgspec.json.encode(value)
    assert json_depth(raw, 1000) == depth_of(value)


@given(JSON)
def test_values_within_the_limits_round_trip_through_msgpack(value: object) -> None:
    raw = msgspec.json.encode(value)
    if depth_of(value) <= MAX_JSON_DEPTH:
        decoded = decode_json_within_limits(raw)
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(decoded)) == decoded


@pytest.mark.parametrize(("raw", "path"), [
    (b'{"a": [1, 18446744073709551616]}', "a/1"),
    (b'{"a": -9223372036854775809}', "a"),
    (b"[" * 33 + b"]" * 33, ""),
    (b'{"s": "' + b"[" * 100 + b'"}', None),  # brackets inside a string do not count
])
def test_limits_name_where_they_break(raw: bytes, path: str | None) -> None:
    if path is None:
        assert decode_json_within_limits(raw) == {"s": "[" * 100}
        return
    with pytest.raises(JsonLimitExceeded) as refused:
        decode_json_within_limits(raw)
    assert refused.value.path == path


def test_check_json_value_walks_any_depth_without_recursing() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(JsonLimitExceeded):
        check_json_value(deep)
    check_json_value({"ok": [1, 2.5, "x", None, True]})


@pytest.mark.parametrize(("raw", "status", "field"), [
    (b"{", 400, "body"),
    (b'"\xff"', 400, "body"),
    (b"[" * 5000, 422, "body"),
    (b"1e400", 422, "body"),
])
def test_bodies_that_are_not_acceptable_json(raw: bytes, status: int, field: str) -> None:
    with pytest.raises(ApiError) as refused:
        decode_json(raw)
    assert refused.value.status == status
    assert [d.field for d in refused.value.details] == [field]


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "slug": "s", "endpoint_url": "http://a.example/", "max_attempts": "3"},
     "max_attempts"),
    ({"name": "x", "slug": "s", "endpoint_url": "http://a.example/", "enabled": 0}, "enabled"),
    ({"name": "x", "slug": "s", "endpoint_url": "http://a.example/", "timeout_secs": 1e3},
     "timeout_secs"),
    ({"name": "x\u202e", "slug": "s", "endpoint_url": "http://a.example/"}, "name"),
    ({"name": "x", "slug": "s", "endpoint_url": "http://a.example/", "tags": {"\x00": "v"}},
     "tags (a key)"),
    ({"name": "x", "slug": "s", "endpoint_url": "http://a.example/", "nope": 1}, "nope"),
    ({"slug": "s", "endpoint_url": "http://a.example/"}, "name"),
])
def test_strict_types_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ApiError) as refused:
        decode_as(body, CreateJobRequest)
    assert refused.value.status == 422
    assert [d.field for d in refused.value.details] == [field]


def test_metadata_values_must_be_strings() -> None:
    with pytest.raises(ApiError) as refused:
        decode_as({"metadata": {"k": 1}}, TriggerRunRequest)
    assert [d.field for d in refused.value.details] == ["metadata (a value)"]
