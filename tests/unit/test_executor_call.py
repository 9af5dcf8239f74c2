"""The executor's call against a real loopback HTTP server (no Kafka), and the connect-time
address check through its two seams: a static resolver, and a socket factory that records
every connection attempt and refuses any to a non-loopback address (so no test can send
traffic anywhere else, whatever the code under test does)."""

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult

from deploy.kafka.node import free_port
from events import DispatchOrder
from services.addresses import Network, parse_networks
from services.domain import ReportAttemptFailed, ReportAttemptSucceeded
from services.executor.call import (
    MAX_RESPONSE_BYTES,
    MAX_RESULT_BYTES,
    Report,
    ResultRefused,
    call_endpoint,
    close_session,
    decode_result,
    open_session,
)
from services.executor.guard import AddressRefused
from tests.integration.endpoint import Endpoint

LOOPBACK = parse_networks(["127.0.0.0/8"])


@dataclass
class Recorder:
    """The transport seam: every socket the executor asks for passes through here."""

    attempts: list[str] = field(default_factory=list)

    def __call__(self, addr_info: AddrInfoType) -> socket.socket:
        host = str(addr_info[4][0])
        self.attempts.append(host)
        if not ipaddress.ip_address(host).is_loopback:
            raise OSError(f"test transport refuses non-loopback {host}")
        family, type_, proto, _, _ = addr_info
        return socket.socket(family, type_, proto)

    @property
    def non_loopback(self) -> list[str]:
        return [h for h in self.attempts if not ipaddress.ip_address(h).is_loopback]


class StaticResolver(AbstractResolver):
    """The DNS seam: names resolve to what the test says, nothing is asked of real DNS."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"{host} does not resolve (test table)")
        return [{"hostname": host, "host": ip, "port": port,
                 "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for ip in self.table[host]]

    async def close(self) -> None:
        pass


RESOLVER_TABLE = {
    "evil.test": ["169.254.169.254"],
    "cgnat.test": ["100.64.0.1"],
    "private.test": ["10.0.0.1"],
    "rebind.test": ["127.0.0.1", "10.0.0.1"],  # one good address does not make it good
    "mapped.test": ["::ffff:169.254.169.254"],
    "ok.test": ["127.0.0.1"],
}


def order(url: str, timeout: int = 5, fallback: str | None = None,
          payload: object = None) -> DispatchOrder:
    return DispatchOrder(run_id="r1", job_id="j1", project_id="p", attempt=2,
                         endpoint_url=url, timeout_secs=timeout,
                         payload={"a": 1} if payload is None else payload,
                         fallback_endpoint_url=fallback)


async def call(o: DispatchOrder, allowed: Sequence[Network] = LOOPBACK,
               recorder: Recorder | None = None) -> Report:
    recorder = recorder or Recorder()
    session = open_session(allowed, 10, resolver=StaticResolver(RESOLVER_TABLE),
                           create_socket=recorder)
    try:
        return await call_endpoint(session, o, allowed)
    finally:
        await close_session(session)
        assert recorder.non_loopback == []


def failed(report: Report) -> ReportAttemptFailed:
    assert isinstance(report, ReportAttemptFailed), report
    return report


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
    report = failed(await call(order(f"{server.base_url}/fail/{status}")))
    assert report.failure.kind == "http_status" and report.failure.status_code == status
    assert report.failure.retryable is retryable


async def test_timeout_is_a_retryable_timeout(server: Endpoint) -> None:
    report = failed(await call(order(f"{server.base_url}/slow/3000", timeout=1)))
    assert report.failure.kind == "timeout" and report.failure.retryable


async def test_connection_refused_is_retryable() -> None:
    report = failed(await call(order(f"http://127.0.0.1:{free_port()}/x")))
    assert report.failure.kind == "connection" and report.failure.retryable


async def test_fallback_is_called_when_the_endpoint_is_down(server: Endpoint) -> None:
    report = await call(order(f"http://127.0.0.1:{free_port()}/x",
                              fallback=f"{server.base_url}/echo"))
    assert isinstance(report, ReportAttemptSucceeded)


async def test_redirects_are_not_followed(server: Endpoint) -> None:
    report = failed(await call(order(f"{server.base_url}/redirect")))
    assert report.failure.kind == "http_status" and report.failure.status_code == 302
    assert not report.failure.retryable
    assert "not followed" in report.failure.message
    assert [r.path for r in server.received] == ["/redirect"]


async def test_json_nested_5000_deep_fails_the_attempt_permanently(server: Endpoint) -> None:
    report = failed(await call(order(f"{server.base_url}/deep/5000")))
    assert report.failure.kind == "invalid_response" and not report.failure.retryable
    assert "nested too deep" in report.failure.message


async def test_json_deeper_than_the_limit_fails_the_attempt(server: Endpoint) -> None:
    report = failed(await call(order(f"{server.base_url}/deep/40")))
    assert report.failure.kind == "invalid_response"
    assert "nested deeper than 32" in report.failure.message
    ok = await call(order(f"{server.base_url}/deep/20"))
    assert isinstance(ok, ReportAttemptSucceeded)


async def test_an_integer_over_64_bits_fails_the_attempt(server: Endpoint) -> None:
    report = failed(await call(order(f"{server.base_url}/echo", payload={"n": 2**70})))
    assert report.failure.kind == "invalid_response" and not report.failure.retryable
    assert "echo/n" in report.failure.message and "64-bit" in report.failure.message


@pytest.mark.parametrize("path", ["big", "stream"])
async def test_a_body_over_the_limit_is_refused(server: Endpoint, path: str) -> None:
    report = failed(await call(order(f"{server.base_url}/{path}/{MAX_RESPONSE_BYTES + 10}")))
    assert report.failure.kind == "invalid_response" and not report.failure.retryable
    assert "over the limit" in report.failure.message


async def test_a_body_under_the_limit_is_kept(server: Endpoint) -> None:
    report = await call(order(f"{server.base_url}/stream/200000"))
    assert isinstance(report, ReportAttemptSucceeded) and report.result == "x" * 200000


async def test_a_body_that_is_not_json_is_kept_as_text(server: Endpoint) -> None:
    report = await call(order(f"{server.base_url}/text"))
    assert isinstance(report, ReportAttemptSucceeded)
    assert report.result == {"body": "plain words, not JSON"}


@pytest.mark.parametrize("url", ["http://10.1.2.3/hook", "http://192.168.0.1/",
                                 "http://169.254.169.254/latest", "http://100.64.0.1/",
                                 "http://[::1]:9/", "http://127.0.0.1:9/", "ftp://example.com/",
                                 "http://localhost:9/"])
async def test_private_addresses_are_refused_unless_allowed(url: str) -> None:
    recorder = Recorder()
    report = failed(await call(order(url), allowed=[], recorder=recorder))
    assert report.failure.kind == "refused" and not report.failure.retryable
    assert recorder.attempts == []


@pytest.mark.parametrize(("url", "words"), [
    ("http://127.0.0.1:99999/", "out of range"),
    ("http://0177.0.0.1:9000/hook", "write the address as 127.0.0.1"),
    ("http://[::ffff:127.0.0.1]:9000/", "write the address as 127.0.0.1"),
    ("http://[fe80::1%25eth0]/", "zone id"),
    ("not a url", "space or control"),
])
async def test_urls_no_call_can_be_made_of_fail_permanently(url: str, words: str) -> None:
    recorder = Recorder()
    report = failed(await call(order(url), recorder=recorder))
    assert report.failure.kind == "refused" and not report.failure.retryable
    assert words in report.failure.message
    assert recorder.attempts == []


@pytest.mark.parametrize(("host", "words"), [
    ("evil.test", "169.254.169.254 is a link-local"),
    ("cgnat.test", "shared address space"),
    ("private.test", "private"),
    ("rebind.test", "10.0.0.1"),
    ("mapped.test", "link-local"),
])
async def test_a_name_resolving_to_a_refused_address_is_refused_before_connecting(
        host: str, words: str) -> None:
    recorder = Recorder()
    report = failed(await call(order(f"http://{host}:8080/hook"), recorder=recorder))
    assert report.failure.kind == "refused" and not report.failure.retryable
    assert words in report.failure.message
    assert recorder.attempts == []


async def test_a_name_resolving_to_an_allowed_address_reaches_it(server: Endpoint) -> None:
    recorder = Recorder()
    report = await call(order(f"http://ok.test:{server.port}/echo"), recorder=recorder)
    assert isinstance(report, ReportAttemptSucceeded)
    assert recorder.attempts == ["127.0.0.1"]
    assert server.received[-1].headers["Host"] == f"ok.test:{server.port}"


async def test_localhost_is_loopback_without_asking_dns(server: Endpoint) -> None:
    recorder, resolver = Recorder(), StaticResolver({})
    session = open_session(LOOPBACK, 10, resolver=resolver, create_socket=recorder)
    try:
        report = await call_endpoint(session, order(f"http://localhost:{server.port}/echo"),
                                     LOOPBACK)
    finally:
        await close_session(session)
    assert isinstance(report, ReportAttemptSucceeded)
    assert resolver.asked == [] and recorder.attempts == ["127.0.0.1"]


@pytest.mark.parametrize("url", ["http://10.0.0.1:9/", "http://169.254.169.254/",
                                 "http://[::ffff:a9fe:a9fe]/", "http://100.64.0.1/"])
async def test_the_socket_guard_refuses_what_skipped_the_url_check(url: str) -> None:
    # aiohttp never resolves a literal address: the socket factory is what sees it.
    recorder = Recorder()
    session = open_session(LOOPBACK, 10, create_socket=recorder)
    try:
        with pytest.raises(aiohttp.ClientConnectorError) as error:
            await session.get(url)
    finally:
        await close_session(session)
    assert isinstance(error.value.os_error, AddressRefused)
    assert recorder.attempts == []


async def test_connections_are_reused(server: Endpoint) -> None:
    recorder = Recorder()
    session = open_session(LOOPBACK, 10, create_socket=recorder)
    try:
        for _ in range(3):
            report = await call_endpoint(session, order(f"{server.base_url}/echo"), LOOPBACK)
            assert isinstance(report, ReportAttemptSucceeded)
    finally:
        await close_session(session)
    assert recorder.attempts == ["127.0.0.1"]


async def test_only_a_new_connection_has_a_connect_time(server: Endpoint) -> None:
    # The connector's timing seam (a private aiohttp step): if an upgrade renamed it,
    # the first call would show no connect time.
    session = open_session(LOOPBACK, 10, create_socket=Recorder())
    try:
        traces = []
        for _ in range(2):
            report = await call_endpoint(session, order(f"{server.base_url}/echo"), LOOPBACK)
            assert isinstance(report, ReportAttemptSucceeded) and report.trace is not None
            traces.append(report.trace)
    finally:
        await close_session(session)
    first, second = traces
    assert first.connect_ms is not None and first.connect_ms > 0
    assert second.connect_ms == 0.0
    for trace in traces:
        assert trace.ttfb_ms is not None and trace.transfer_ms is not None
        assert trace.dispatch_ms is not None and trace.dispatch_ms >= trace.ttfb_ms


def test_decode_result() -> None:
    assert decode_result(b"") is None
    assert decode_result(b'{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    assert decode_result(b"\xff not json") == {"body": "\ufffd not json"}
    assert decode_result(b"1e400") == {"body": "1e400"}  # no float holds it: kept as text
    with pytest.raises(ResultRefused, match="nested too deep"):
        decode_result(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(ResultRefused, match="64-bit"):
        decode_result(b'{"n": 18446744073709551616}')
    with pytest.raises(ResultRefused, match="64-bit"):
        decode_result(b"-9223372036854775809")
    # Text that is not JSON grows when escaped: bounded as the report will carry it.
    with pytest.raises(ResultRefused, match="once encoded"):
        decode_result(b"\x01" * (MAX_RESULT_BYTES // 4))
