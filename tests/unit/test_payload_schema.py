"""payload_schema: checked at creation, applied with RE2 in worker processes with a hard
budget, the event loop never blocked (issue 5)."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from services.api import payload_schema as ps
from services.api.payload_schema import PayloadInvalid, SchemaRefused, ValidatorPool


@pytest.fixture(scope="module", autouse=True)
async def _default_pool() -> AsyncIterator[None]:
    await ps.start()
    yield
    await ps.close()


@pytest.fixture
async def pool() -> AsyncIterator[ValidatorPool]:
    one = ValidatorPool(1)
    await one.start()
    yield one
    await one.close()


async def _with_lag(awaitable: Awaitable[Any]) -> tuple[BaseException | None, float]:
    """Await ``awaitable`` while a ticker measures the event loop's worst lag (s)."""
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            started = time.perf_counter()
            await asyncio.sleep(0.002)
            worst = max(worst, time.perf_counter() - started - 0.002)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    error: BaseException | None = None
    try:
        await awaitable
    except Exception as exc:
        error = exc
    finally:
        done = True
        await task
    return error, worst


def _refused(schema: Any) -> SchemaRefused:
    with pytest.raises(SchemaRefused) as info:
        ps.check_schema(schema)
    return info.value


async def _invalid(schema: Any, payload: Any, **kwargs: Any) -> PayloadInvalid:
    with pytest.raises(PayloadInvalid) as info:
        await ps.validate_payload(schema, payload, **kwargs)
    return info.value


def _exponential_schema(levels: int = 40) -> dict[str, Any]:
    """2**levels evaluations for any non-string: tiny input, unbounded cost."""
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(levels)}
    defs[f"d{levels}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


# --- the attacker's findings ----------------------------------------------------------

async def test_catastrophic_pattern_is_linear_and_correct() -> None:
    schema = {"type": "string", "pattern": "^(a+)+$"}
    ps.check_schema(schema)
    started = time.perf_counter()
    error = await _invalid(schema, "a" * 29 + "!")
    assert (error.path, error.reason) == ("payload", "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' does "
                                                     "not match '^(a+)+$'")
    await ps.validate_payload(schema, "a" * 29)
    await ps.validate_payload(schema, "a" * 100_000)
    error = await _invalid(schema, "a" * 100_000 + "!")
    assert error.path == "payload"
    assert len(error.reason) <= ps.MAX_TEXT
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("ref", ["#/$defs/missing", "https://example.com/schema.json",
                                 "file:///etc/passwd", "#nowhere", "#/const", "other.json#",
                                 "", "#/properties/a/type"])
def test_refs_outside_the_document_are_refused(ref: str) -> None:
    error = _refused({"$defs": {"x": {}}, "const": {"type": "string"},
                      "properties": {"a": {"type": "string", "$ref": ref}}})
    assert error.path == "payload_schema/properties/a/$ref"
    assert repr(ref) in error.reason


def test_dynamic_refs_outside_the_document_are_refused() -> None:
    error = _refused({"items": {"$dynamicRef": "https://example.com/s#meta"}})
    assert error.path == "payload_schema/items/$dynamicRef"


async def test_local_refs_work() -> None:
    schema = {"$defs": {"name": {"type": "string", "pattern": "^[a-z]+$"},
                        "a/b c": {"type": "integer"}},
              "properties": {"n": {"$ref": "#/$defs/name"}, "m": {"$ref": "#/$defs/a~1b%20c"},
                             "self": {"$ref": "#"}, "tag": {"$anchor": "tag", "enum": [1]},
                             "t": {"$ref": "#tag"}}}
    ps.check_schema(schema)
    await ps.validate_payload(schema, {"n": "abc", "m": 3, "self": {"n": "x"}, "t": 1})
    assert (await _invalid(schema, {"n": "ABC"})).path == "payload/n"
    assert (await _invalid(schema, {"m": "3"})).path == "payload/m"
    assert (await _invalid(schema, {"self": {"self": {"n": 1}}})).path == "payload/self/self/n"
    assert (await _invalid(schema, {"t": 2})).path == "payload/t"


async def test_dynamic_ref_to_a_dynamic_anchor_works() -> None:
    schema = {"$dynamicAnchor": "node", "type": "object",
              "properties": {"children": {"type": "array",
                                          "items": {"$dynamicRef": "#node"}}},
              "required": ["children"]}
    ps.check_schema(schema)
    await ps.validate_payload(schema, {"children": [{"children": []}]})
    error = await _invalid(schema, {"children": [{"children": [{}]}]})
    assert error.path == "payload/children/0/children/0"


async def test_root_id_names_the_document_and_nested_ids_are_refused() -> None:
    schema = {"$id": "https://example.com/job.json", "$defs": {"x": {"type": "string"}},
              "properties": {"a": {"$ref": "#/$defs/x"}}}
    ps.check_schema(schema)     # nothing is retrieved: every reference starts with '#'
    assert (await _invalid(schema, {"a": 1})).path == "payload/a"
    error = _refused({"properties": {"a": {"$id": "https://example.com/other.json"}}})
    assert error.path == "payload_schema/properties/a/$id"


def test_only_draft_2020_12() -> None:
    ps.check_schema({"$schema": "https://json-schema.org/draft/2020-12/schema"})
    assert _refused({"$schema": "http://json-schema.org/draft-07/schema#"}).path == \
        "payload_schema/$schema"
    error = _refused({"properties": {"a": {"type": "strin"}}})
    assert error.path == "payload_schema/properties/a/type"
    assert "draft 2020-12" in error.reason
    assert _refused([]).path == "payload_schema"


# --- patterns ---------------------------------------------------------------------------

@pytest.mark.parametrize(("schema", "path", "word"), [
    ({"properties": {"a": {"pattern": "^(a)\\1$"}}}, "payload_schema/properties/a/pattern",
     "backreferences"),
    ({"pattern": "foo(?=bar)"}, "payload_schema/pattern", "lookaround"),
    ({"patternProperties": {"^(?<!x)y": {}}}, "payload_schema/patternProperties/^(?<!x)y",
     "lookaround"),
    ({"pattern": "^[\\p{L}]{1,1000}$"}, "payload_schema/pattern", "too large"),
    ({"pattern": "a" * (ps.MAX_PATTERN_CHARS + 1)}, "payload_schema/pattern", "longer"),
])
def test_patterns_re2_cannot_run_are_refused(schema: Any, path: str, word: str) -> None:
    error = _refused(schema)
    assert error.path == path
    assert word in error.reason


def test_patterns_in_data_are_not_patterns() -> None:
    ps.check_schema({"const": {"pattern": "(a)\\1"}, "examples": [{"$ref": "https://x"}]})


async def test_pattern_properties_and_additional_properties() -> None:
    schema = {"type": "object", "properties": {"id": {"type": "integer"}},
              "patternProperties": {"^x-": {"type": "integer"}, "^(a+)+$": {"type": "string"}},
              "additionalProperties": False}
    ps.check_schema(schema)
    await ps.validate_payload(schema, {"id": 1, "x-a": 2, "a" * 5_000: "s"})
    assert (await _invalid(schema, {"x-a": "s"})).path == "payload/x-a"
    error = await _invalid(schema, {"y": 1, "a" * 5_000 + "!": 1})
    assert error.path == "payload"
    assert "do not match any of the regexes" in error.reason


async def test_unevaluated_properties_see_pattern_properties() -> None:
    schema = {"allOf": [{"patternProperties": {"^n_": {"type": "number"}}}],
              "unevaluatedProperties": False}
    ps.check_schema(schema)
    await ps.validate_payload(schema, {"n_a": 1.5})
    error = await _invalid(schema, {"n_a": 1, "other": 2})
    assert "'other' was unexpected" in error.reason


async def test_ecma_like_semantics() -> None:
    schema = {"type": "string", "pattern": "^caf\\u00e9 \\uD83D\\uDE00$"}
    ps.check_schema(schema)
    await ps.validate_payload(schema, "café 😀")
    await _invalid({"type": "string", "pattern": "^abc$"}, "abc\n")   # $ is end of text
    await ps.validate_payload({"pattern": "b"}, "abc")                   # search, not match
    await _invalid({"pattern": "^\\d+$"}, "١٢")                          # \d is ASCII
    await ps.validate_payload({"pattern": "^\\p{L}+$"}, "Żółw")
    await ps.validate_payload({"pattern": "^x"}, "x\ud800")               # lone surrogate
    assert ps.to_re2("\\\\u0041[\\u0000-\\u007f]\\u{1F600}") == \
        "\\\\u0041[\\x{0}-\\x{7F}]\\x{1F600}"


# --- the budget, the event loop ------------------------------------------------------------

async def test_unique_items_on_20000_objects_is_fast_and_the_loop_stays_responsive() -> None:
    schema = {"type": "array", "uniqueItems": True}
    items = [{"id": i, "tags": ["a", i]} for i in range(20_000)]
    started = time.perf_counter()
    error, lag = await _with_lag(ps.validate_payload(schema, items))
    assert error is None
    assert lag < 0.25  # a blocked loop would lag by the whole validation (seconds)
    error, lag = await _with_lag(ps.validate_payload(schema, [*items, {"tags": ["a", 7.0],
                                                                       "id": 7}]))
    assert isinstance(error, PayloadInvalid)
    assert "non-unique" in error.reason
    assert lag < 0.25  # a blocked loop would lag by the whole validation (seconds)
    assert time.perf_counter() - started < 2 * ps.BUDGET_SECS
    await ps.validate_payload(schema, [1, True, "1", [1], [True], {"a": 1}, {"a": True}])
    await _invalid(schema, [{"a": 1, "b": [1]}, {"b": [1.0], "a": 1}])


async def test_the_budget_kills_the_worker_and_the_pool_recovers(pool: ValidatorPool) -> None:
    schema = _exponential_schema()
    ps.check_schema(schema)
    started = time.perf_counter()
    error, lag = await _with_lag(pool.validate(schema, 1, budget=0.3))
    assert isinstance(error, PayloadInvalid)
    assert (error.path, error.reason) == ("payload", "validation took longer than 0.3 s")
    assert time.perf_counter() - started < 1.5
    assert lag < 0.25  # a blocked loop would lag by the whole validation (seconds)
    await pool.validate(schema, "a string matches the last level at once")
    with pytest.raises(PayloadInvalid) as info:
        await pool.validate({"properties": {"a": {"type": "integer"}}}, {"a": "x"})
    assert info.value.path == "payload/a"
    with pytest.raises(PayloadInvalid, match="took longer"):
        await pool.validate(schema, 1, budget=0.2)
    await pool.validate({"type": "integer"}, 1)


async def test_a_cancelled_caller_leaves_the_pool_usable(pool: ValidatorPool) -> None:
    task = asyncio.create_task(pool.validate(_exponential_schema(), 1, budget=0.3))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await pool.validate({"type": "integer"}, 1)
    with pytest.raises(PayloadInvalid):
        await pool.validate({"type": "integer"}, "1")


async def test_no_free_worker_in_time_is_unavailable_not_invalid() -> None:
    busy = ValidatorPool(1, wait_secs=0.1)
    await busy.start()
    try:
        slow = asyncio.create_task(busy.validate(_exponential_schema(), 1, budget=0.5))
        await asyncio.sleep(0.02)
        with pytest.raises(ps.ValidatorUnavailable):
            await busy.validate({"type": "integer"}, 1)
        with pytest.raises(PayloadInvalid, match="took longer"):
            await slow
        for _ in range(100):    # the killed worker's replacement is starting
            try:
                await busy.validate({"type": "integer"}, 1)
                break
            except ps.ValidatorUnavailable:
                pass
        else:
            pytest.fail("the pool did not recover")
    finally:
        await busy.close()
    with pytest.raises(ps.ValidatorUnavailable):
        await busy.validate({"type": "integer"}, 1)


async def test_concurrent_validations() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}
    results = await asyncio.gather(*(ps.validate_payload(schema, {"n": n - 10})
                                     for n in range(40)), return_exceptions=True)
    assert [r is None for r in results] == [n >= 10 for n in range(40)]
    assert all(isinstance(r, PayloadInvalid) and r.path == "payload/n"
               for r in results if r is not None)


# --- answers ----------------------------------------------------------------------------------

async def test_best_match_paths() -> None:
    schema = {"type": "object", "required": ["items"],
              "properties": {"items": {"type": "array", "items": {
                  "type": "object", "required": ["name"],
                  "properties": {"name": {"type": "string", "minLength": 2},
                                 "kind": {"oneOf": [{"const": "a"}, {"type": "integer"}]}}}}}}
    ps.check_schema(schema)
    await ps.validate_payload(schema, {"items": [{"name": "ab", "kind": 3}]})
    error = await _invalid(schema, {"items": [{"name": "ab"}, {"name": "x"}]})
    assert (error.path, error.reason) == ("payload/items/1/name", "'x' is too short")
    error = await _invalid(schema, {"items": [{"name": 5}]})
    assert (error.path, error.reason) == ("payload/items/0/name", "5 is not of type 'string'")
    assert (await _invalid(schema, {"items": [{"name": "ab", "kind": "b"}]})).path == \
        "payload/items/0/kind"
    error = await _invalid(schema, {})
    assert (error.path, error.reason) == ("payload", "'items' is a required property")
    assert (await _invalid(schema, [])).path == "payload"


async def test_format_is_an_annotation_only() -> None:
    schema = {"type": "string", "format": "email"}
    ps.check_schema(schema)
    await ps.validate_payload(schema, "not an email")


async def test_what_cannot_be_applied_is_an_invalid_payload_not_a_500() -> None:
    # stored before these checks existed: refused by the worker's own check
    error = await _invalid({"$ref": "file:///etc/passwd"}, 1)
    assert error.path == "payload"
    assert error.reason.startswith("payload_schema could not be applied: payload_schema/$ref")
    error = await _invalid({"pattern": "(a)\\1"}, "aa")
    assert error.reason.startswith("payload_schema could not be applied")
    # a $ref loop that consumes nothing
    schema = {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
              "$ref": "#/$defs/a"}
    ps.check_schema(schema)
    error = await _invalid(schema, 1)
    assert error.path == "payload"
    assert error.reason.startswith("payload_schema could not be applied: RecursionError")
    await ps.validate_payload({"type": "integer"}, 1)


async def test_bool_schemas() -> None:
    ps.check_schema(True)
    await ps.validate_payload(True, {"any": "thing"})
    assert (await _invalid(False, 1)).path == "payload"
    await ps.validate_payload(None, 1)


def test_size_limits() -> None:
    wide: dict[str, Any] = {"properties": {f"p{i}": {} for i in range(ps.MAX_SUBSCHEMAS)}}
    assert "subschemas" in _refused(wide).reason
    deep: dict[str, Any] = {}
    for _ in range(ps.MAX_DEPTH):
        deep = {"not": deep}
    assert "deeper" in _refused(deep).reason
    many = {"properties": {f"p{i}": {"pattern": f"^{i}"} for i in range(ps.MAX_PATTERNS + 1)}}
    assert "patterns" in _refused(many).reason


async def test_check_schema_async() -> None:
    await ps.check_schema_async({"type": "object", "properties": {"a": {"pattern": "^a"}}})
    with pytest.raises(SchemaRefused) as info:
        await ps.check_schema_async({"properties": {"a": {"pattern": "(a)\\1"}}})
    assert info.value.path == "payload_schema/properties/a/pattern"
    with pytest.raises(SchemaRefused):
        await ps.check_schema_async("not a schema")
