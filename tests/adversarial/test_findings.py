"""Each finding of the hostile review of issue 5, as an attack through the API followed by
proof that the service still serves every project with the same processes."""

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.adversarial.support import assert_still_serving, error_of, fields, pids, slug
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
async def before(ready_stack: RunningStack) -> dict[str, int]:
    return pids(ready_stack)


def job_body(endpoint: Endpoint, **fields: Any) -> dict[str, Any]:
    return {"name": "attack", "slug": slug("attack"), "endpoint_url": f"{endpoint.base_url}/echo",
            **fields}


async def test_1_a_payload_integer_over_64_bits_is_refused(
        ready_stack: RunningStack, endpoint: Endpoint, before: dict[str, int]) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("big-int"), f"{endpoint.base_url}/echo")
        for huge in ("18446744073709551616", "-9223372036854775809", "1" + "0" * 400):
            response = await client.post(f"/v1/jobs/{job['id']}/trigger",
                                         content=b'{"payload": {"n": [%s]}}' % huge.encode())
            assert response.status_code == 422, response.text
            assert fields(response) in (["payload/n/0"], ["body"])
        # The largest integers that fit come back unchanged through the whole pipeline.
        edge = {"max": 2**64 - 1, "min": -(2**63), "float": 1.5e300}
        response = await client.post(f"/v1/jobs/{job['id']}/trigger", json={"payload": edge})
        assert response.status_code == 201, response.text
        done = await wait_for_status(client, response.json()["id"], {"completed"})
        assert done["payload"] == edge and done["result"]["echo"] == edge
    await assert_still_serving(ready_stack, endpoint, before)


async def test_2_numbers_out_of_range_at_creation_are_refused_and_slugs_stay_unique(
        ready_stack: RunningStack, endpoint: Endpoint, before: dict[str, int]) -> None:
    async with ready_stack.client() as client:
        for name in ("max_concurrency", "run_ttl_secs", "timeout_secs", "max_attempts"):
            for value in (10**30, 2**63, -1, 0):
                response = await client.post("/v1/jobs", json=job_body(endpoint,
                                                                       **{name: value}))
                assert response.status_code == 422, (name, value, response.text)
                assert fields(response) == [name]
        body = job_body(endpoint, max_concurrency=10000, run_ttl_secs=31_536_000)
        assert (await client.post("/v1/jobs", json=body)).status_code == 201
        again = await client.post("/v1/jobs", json=body)
        assert again.status_code == 409 and error_of(again)["code"] == "conflict"
        trigger = await client.post(f"/v1/jobs/{body['slug']}/trigger")
        assert trigger.status_code == 201
    await assert_still_serving(ready_stack, endpoint, before)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:99999/", "http://127.0.0.1:0/", "http://0177.0.0.1:9000/hook",
    "http://2130706433/hook", "http://0x7f.1/hook", "http://[::ffff:127.0.0.1]:9000/",
    "ftp://127.0.0.1/x", "http:///nohost", "http://user:pw@127.0.0.1/", "http://127.0.0.1 /x",
])
async def test_3_urls_the_executor_cannot_call_are_refused_at_creation(
        ready_stack: RunningStack, endpoint: Endpoint, before: dict[str, int],
        url: str) -> None:
    async with ready_stack.client() as client:
        response = await client.post("/v1/jobs", json=job_body(endpoint, endpoint_url=url))
        assert response.status_code == 422, response.text
        assert fields(response) == ["endpoint_url"]
        fallback = await client.post("/v1/jobs", json=job_body(endpoint,
                                                               fallback_endpoint_url=url))
        assert fallback.status_code == 422 and fields(fallback) == ["fallback_endpoint_url"]
    if url.endswith("99999/"):  # once is enough: the service goes on
        await assert_still_serving(ready_stack, endpoint, before)


async def test_3_an_endpoint_answering_json_5000_deep_fails_that_run_alone(
        ready_stack: RunningStack, endpoint: Endpoint, before: dict[str, int]) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("deep"), f"{endpoint.base_url}/deep/5000")
        response = await client.post(f"/v1/jobs/{job['id']}/trigger")
        run = await wait_for_status(client, response.json()["id"], {"failed"})
        assert run["error_detail"]["kind"] == "invalid_response" and run["attempt"] == 1
        assert len(endpoint.for_run(run["id"])) == 1  # called once, not re-posted
    await assert_still_serving(ready_stack, endpoint, before)


async def test_4_a_slow_endpoint_does_not_hold_back_other_jobs(
        ready_stack: RunningStack, endpoint: Endpoint, before: dict[str, int]) -> None:
    async with ready_stack.client() as client:
        slow = await create_job(client, slug("slow"), f"{endpoint.base_url}/slow/20000",
                                timeout_secs=60)
        slow_run = (await client.post(f"/v1/jobs/{slow['id']}/trigger")).json()
        await wait_for_status(client, slow_run["id"], {"running"})
        started = time.monotonic()
        await assert_still_serving(ready_stack, endpoint, before)
        # The other project's run finished while the slow one still holds its slot.
        assert time.monotonic() - started < 15
        still = (await client.get(f"/v1/runs/{slow_run['id']}")).json()
        assert still["status"] == "running"


@pytest.mark.parametrize("url", [
    "http://100.64.0.1/latest/meta-data", "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/", "http://192.168.1.1/", "http://172.16.0.1/", "http://[fd00::1]/",
    "http://[::ffff:169.254.169.254]/", "http://0.0.0.0/", "http://[::]/",
])
async def test_5_private_and_shared_addresses_are_refused_at_creation(
        ready_stack: RunningStack, endpoint: Endpoint, url: str) -> None:
    async with ready_stack.client() as client:
        response = await client.post("/v1/jobs", json=job_body(endpoint, endpoint_url=url))
        assert response.status_code == 422, response.text
        assert fields(response) == ["endpoint_url"]


async def test_6_a_catastrophic_pattern_does_not_freeze_the_api(
        ready_stack: RunningStack, endpoint: Endpoint, before: dict[str, int]) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string",
                                                     "pattern": "^(a+)+$"}}}
    async with ready_stack.client() as client:
        job = await create_job(client, slug("redos"), f"{endpoint.base_url}/echo",
                               payload_schema=schema)
        attack = {"payload": {"s": "a" * 29 + "!"}}

        async def health_latency() -> float:
            started = time.monotonic()
            assert (await client.get("/healthz")).status_code == 200
            return time.monotonic() - started

        triggers = [client.post(f"/v1/jobs/{job['id']}/trigger", json=attack)
                    for _ in range(4)]
        results = await asyncio.gather(*triggers, *(health_latency() for _ in range(4)))
        for response in results[:4]:
            assert isinstance(response, httpx.Response)
            assert response.status_code == 422 and fields(response) == ["payload/s"]
        # The event loop stayed free: /healthz answered at once, not after seconds.
        assert max(float(r) for r in results[4:] if isinstance(r, float)) < 1.0
        ok = await client.post(f"/v1/jobs/{job['id']}/trigger", json={"payload": {"s": "aaa"}})
        assert ok.status_code == 201
    await assert_still_serving(ready_stack, endpoint, before)


@pytest.mark.parametrize("ref", ["#/$defs/missing", "https://example.com/schema.json",
                                 "file:///etc/passwd", "other.json#/x"])
async def test_7_unresolvable_refs_are_refused_at_creation(
        ready_stack: RunningStack, endpoint: Endpoint, ref: str) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": ref}}}
    async with ready_stack.client() as client:
        response = await client.post("/v1/jobs", json=job_body(endpoint,
                                                               payload_schema=schema))
        assert response.status_code == 422, response.text
        assert fields(response)[0].startswith("payload_schema")


async def test_7_deep_bodies_are_refused_not_500(
        ready_stack: RunningStack, endpoint: Endpoint, before: dict[str, int]) -> None:
    async with ready_stack.client() as client:
        job = await create_job(client, slug("deep-body"), f"{endpoint.base_url}/echo")
        for depth in (33, 1000, 5000, 50_000):
            nested = b"[" * depth + b"]" * depth
            for path, body in (("/v1/jobs", nested),
                               (f"/v1/jobs/{job['id']}/trigger", b'{"payload": %s}' % nested),
                               (f"/v1/jobs/{job['id']}/trigger", b'{"metadata": %s}' % nested)):
                response = await client.post(path, content=body)
                assert response.status_code in (413, 422), (path, depth, response.text)
                error_of(response)
    await assert_still_serving(ready_stack, endpoint, before)


@pytest.mark.parametrize(("field", "value"), [
    ("max_attempts", "3"), ("timeout_secs", "1e3"), ("timeout_secs", 30.0), ("enabled", 0),
    ("enabled", "true"), ("timezone", "Mars/Olympus"), ("timezone", "../../etc/passwd"),
    ("cron", "61 * * * *"), ("cron", "* * * *"), ("cron", "0 0 30 2 *"),
    ("name", "a\u202eb"), ("name", "line\nbreak"), ("name", "x" * 201), ("name", ""),
    ("slug", "UPPER"), ("slug", "a" * 64), ("tags", {"k\x00": "v"}),
    ("default_run_metadata", {"k": "v" * 2000}), ("description", "bell\x07"),
    ("retry_delays_secs", []), ("retry_strategy", "random"), ("group_id", "has space"),
])
async def test_8_loose_types_and_unsafe_text_are_refused(
        ready_stack: RunningStack, endpoint: Endpoint, field: str, value: Any) -> None:
    async with ready_stack.client() as client:
        response = await client.post("/v1/jobs", json=job_body(endpoint, **{field: value}))
        assert response.status_code == 422, response.text
        assert fields(response)[0].split(" ")[0].split("/")[0] == field


async def test_9_authentication_comes_first_and_errors_share_one_shape(
        ready_stack: RunningStack, endpoint: Endpoint) -> None:
    async with httpx.AsyncClient(base_url=ready_stack.base_url) as anonymous:
        bad_body = await anonymous.post("/v1/jobs", content=b'{"max_attempts": "x"}')
        assert bad_body.status_code == 401 and error_of(bad_body)["details"] == []
        assert bad_body.headers["WWW-Authenticate"].startswith("Bearer")
        dev_key = {"Authorization": "Bearer jl_dev_admin_key_change_me"}
        assert (await anonymous.get("/v1/jobs/x", headers=dev_key)).status_code == 401
        for response in (bad_body, await anonymous.get("/nowhere"),
                         await anonymous.delete("/healthz")):
            assert response.status_code in (401, 404, 405)
            error_of(response)
            assert response.json()["request_id"] == response.headers["X-Request-ID"]
    async with ready_stack.client() as client:
        long_id = "r" * 60_000  # httpx refuses URLs over 64 KiB
        missing = await client.get(f"/v1/runs/{long_id}")
        assert missing.status_code == 404 and len(missing.content) < 500
        error_of(missing)
        too_big = await client.post("/v1/jobs", content=b'{"name": "' + b"x" * 300_000 + b'"}')
        assert too_big.status_code == 413 and error_of(too_big)["code"] == "payload_too_large"
        not_json = await client.post("/v1/jobs", content=b"\xff\xfe{")
        assert not_json.status_code == 400 and error_of(not_json)["code"] == "malformed_json"
    async with ready_stack.client(ready_stack.viewer_key) as viewer:
        forbidden = await viewer.post("/v1/jobs", content=b"not even json")
        assert forbidden.status_code == 403  # the role is checked before the body
        error_of(forbidden)


async def test_10_the_openapi_document_tells_the_truth(ready_stack: RunningStack) -> None:
    async with httpx.AsyncClient(base_url=ready_stack.base_url) as anonymous:
        doc = (await anonymous.get("/docs/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"], "type": "http",
        "scheme": "bearer"}
    create = doc["paths"]["/v1/jobs"]["post"]
    assert {"201", "202", "400", "401", "403", "409", "413", "422", "503"} <= set(
        create["responses"])
    assert create["security"] == [{"bearerAuth": []}]
    schemas = doc["components"]["schemas"]
    request = schemas["CreateJobRequest"]
    assert request["additionalProperties"] is False
    assert request["properties"]["max_attempts"]["maximum"] == 100
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            if path not in ("/healthz", "/readyz"):
                assert "401" in operation["responses"], (method, path)
                assert operation["responses"]["401"]["content"]["application/json"][
                    "schema"] == {"$ref": "#/components/schemas/ErrorBody"}
