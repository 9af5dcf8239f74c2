"""Generated hostile requests to every route: no 5xx, every error in the one shape, and the
pipeline still completes a normal run afterwards with the same processes."""

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adversarial.support import assert_still_serving, error_of, pids, slug
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job

pytestmark = pytest.mark.kafka

HOSTILE_TEXT = st.text(alphabet=st.sampled_from(
    ["a", "Z", "0", "-", "_", "/", ".", " ", "\x00", "\x07", "\n", "\u202e", "\u2066", "\ufeff",
     "é", "😀", "\\", '"', "%", "{", "["]), max_size=80) | st.text(max_size=40)
HOSTILE_INTS = (st.integers() | st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30, -1, 0])
                | st.integers(min_value=-(2**70), max_value=2**70))
LEAVES = (st.none() | st.booleans() | HOSTILE_INTS | HOSTILE_TEXT
          | st.floats(allow_nan=False, allow_infinity=False))
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(HOSTILE_TEXT, inner, max_size=4), max_leaves=20)
JOB_FIELDS = ["name", "slug", "endpoint_url", "description", "group_id", "max_attempts",
              "timeout_secs", "retry_strategy", "retry_delays_secs", "payload_schema", "tags",
              "default_run_metadata", "cron", "timezone", "max_concurrency", "run_ttl_secs",
              "environment_id", "enabled", "project_id", "fallback_endpoint_url"]
RUN_FIELDS = ["payload", "metadata", "priority", "idempotency_key", "correlation_id",
              "reason"]
OBJECTS = st.dictionaries(st.sampled_from(JOB_FIELDS + RUN_FIELDS) | HOSTILE_TEXT, VALUES,
                          max_size=8)


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


BULKS = st.lists(OBJECTS | VALUES, max_size=5).map(lambda items: _encode({"items": items}))
BODIES = (OBJECTS.map(_encode) | VALUES.map(_encode) | BULKS
          | st.integers(min_value=30, max_value=3000).map(lambda d: b"[" * d + b"]" * d)
          | st.integers(min_value=30, max_value=3000).map(
              lambda d: b'{"payload": ' + b'{"a": ' * d + b"1" + b"}" * d + b"}")
          | st.binary(max_size=200))
PATH_IDS = HOSTILE_TEXT.filter(bool).map(lambda s: quote(s, safe=""))


@pytest.fixture(scope="module")
def before(ready_stack: RunningStack) -> dict[str, int]:
    return pids(ready_stack)


@pytest.fixture(scope="module")
async def target_job(ready_stack: RunningStack, endpoint: Endpoint) -> dict[str, Any]:
    async with ready_stack.client() as client:
        return await create_job(client, slug("target"), f"{endpoint.base_url}/echo")


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.url, response.text[:500])
    if response.status_code >= 400:
        error_of(response)


COMMON = settings(max_examples=60, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow, HealthCheck.data_too_large])


@COMMON
@given(body=BODIES, key=st.sampled_from(["admin", "viewer", "none", "bogus"]))
def test_hostile_bodies_to_every_write_route(ready_stack: RunningStack, before: dict[str, int],
                                             target_job: dict[str, Any], body: bytes,
                                             key: str) -> None:
    headers = {"Content-Type": "application/json"}
    token = {"admin": ready_stack.admin_key, "viewer": ready_stack.viewer_key,
             "bogus": "x" * 300}.get(key)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=ready_stack.base_url, timeout=30) as client:
        for path in ("/v1/jobs", f"/v1/jobs/{target_job['id']}/trigger",
                     f"/v1/jobs/{target_job['slug']}/trigger",
                     f"/v1/jobs/{target_job['id']}/trigger/bulk", "/v1/runs/run_x/cancel"):
            _check(client.post(path, content=body, headers=headers))


@COMMON
@given(ident=PATH_IDS, method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]))
def test_hostile_paths_and_methods(ready_stack: RunningStack, ident: str, method: str) -> None:
    headers = {"Authorization": f"Bearer {ready_stack.admin_key}"}
    with httpx.Client(base_url=ready_stack.base_url, timeout=30) as client:
        for path in (f"/v1/jobs/{ident}", f"/v1/runs/{ident}", f"/v1/runs/{ident}/events",
                     f"/v1/jobs/{ident}/trigger", f"/v1/jobs/{ident}/trigger/bulk",
                     f"/v1/runs/{ident}/cancel"):
            _check(client.request(method, path, headers=headers))


async def test_the_pipeline_still_completes_a_normal_run(
        ready_stack: RunningStack, endpoint: Endpoint, before: dict[str, int]) -> None:
    await assert_still_serving(ready_stack, endpoint, before)
