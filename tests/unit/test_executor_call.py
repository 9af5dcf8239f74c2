"""The executor's call against a real loopback HTTP server (no Kafka)."""

import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest

from deploy.kafka.node import free_port
from events import DispatchOrder
from services.domain import ReportAttemptFailed, ReportAttemptSucceeded
from services.executor.call import call_endpoint
from tests.integration.endpoint import Endpoint

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.fixture
async def server() -> AsyncIterator[Endpoint]:
    endpoint = Endpoint()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


def order(url: str, timeout: int = 5, fallback: str | None = None) -> DispatchOrder:
    return DispatchOrder(run_id="r1", job_id="j1", project_id="p", attempt=2,
                         endpoint_url=url, timeout_secs=timeout, payload={"a": 1},
                         fallback_endpoint_url=fallback)


async def call(o: DispatchOrder, allowed: list = LOOPBACK):
    async with httpx.AsyncClient() as client:
        return await call_endpoint(client, o, allowed)


async def test_success_sends_headers_and_returns_json(server: Endpoint) -> None:
    report = await call(order(f"{server.base_url}/echo"))
    assert isinstance(report, ReportAttemptSucceeded)
    assert report.result == {"echo": {"a": 1}, "attempt": 2}
    assert report.command_id == "report:r1:2" and report.status_code == 200
    headers = server.received[-1].headers
    assert headers["X-Run-ID"] == "r1" and headers["X-Job-ID"] == "j1"
    assert headers["X-Attempt"] == "2" and headers["Idempotency-Key"] == "r1:2"


@pytest.mark.parametrize(("status", "retryable"),
                         [(500, True), (503, True), (408, True), (429, True),
                          (400, False), (404, False), (422, False)])
async def test_status_codes(server: Endpoint, status: int, retryable: bool) -> None:
    report = await call(order(f"{server.base_url}/fail/{status}"))
    assert isinstance(report, ReportAttemptFailed)
    assert report.failure.kind == "http_status" and report.failure.status_code == status
    assert report.failure.retryable is retryable


async def test_timeout_is_a_retryable_timeout(server: Endpoint) -> None:
    report = await call(order(f"{server.base_url}/slow/3000", timeout=1))
    assert isinstance(report, ReportAttemptFailed)
    assert report.failure.kind == "timeout" and report.failure.retryable


async def test_connection_refused_is_retryable() -> None:
    report = await call(order(f"http://127.0.0.1:{free_port()}/x"))
    assert isinstance(report, ReportAttemptFailed)
    assert report.failure.kind == "connection" and report.failure.retryable


async def test_fallback_is_called_when_the_endpoint_is_down(server: Endpoint) -> None:
    report = await call(order(f"http://127.0.0.1:{free_port()}/x",
                              fallback=f"{server.base_url}/echo"))
    assert isinstance(report, ReportAttemptSucceeded)


@pytest.mark.parametrize("url", ["http://10.1.2.3/hook", "http://192.168.0.1/",
                                 "http://169.254.169.254/latest", "http://[::1]:9/",
                                 "http://127.0.0.1:9/", "ftp://example.com/"])
async def test_private_addresses_are_refused_unless_allowed(url: str) -> None:
    report = await call(order(url), allowed=[])
    assert isinstance(report, ReportAttemptFailed)
    assert report.failure.kind == "refused" and not report.failure.retryable
