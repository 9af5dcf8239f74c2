"""Call one endpoint for one dispatch order and turn what happened into a report command.

Whatever the endpoint does (hang, redirect, answer gigabytes, answer JSON nested 5,000
deep) becomes an AttemptFailure with a reason; nothing an endpoint answers raises out of
``call_endpoint``.
"""

import asyncio
import functools
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import msgspec

from events.dispatch import DispatchOrder
from events.types import AttemptFailure, ExecutionTrace
from schemas.limits import JsonLimitExceeded, check_json_value
from services.addresses import Network, UrlRefused, check_endpoint_url
from services.domain import ReportAttemptFailed, ReportAttemptSucceeded
from services.domain.commands import ReportAttemptAccepted
from services.executor.guard import AddressRefused, SocketFactory, make_connector, plain_socket
from services.executor.timing import Timings, current_timings

# The body read and the result kept are bounded: the result travels in the report command,
# the event and the outcome, each a Kafka record (1 MB by default), so half of that.
MAX_RESPONSE_BYTES = 512 * 1024
# The result as re-encoded for the report (text that is not JSON is escaped, and can grow).
MAX_RESULT_BYTES = 768 * 1024
# Of an error answer only the start is kept, for the message.
MAX_ERROR_BODY_BYTES = 500
RETRYABLE_STATUS = frozenset({408, 429})
# 202: the endpoint took the attempt and reports its end through the callbacks.
ACCEPTED = 202
_CHUNK = 64 * 1024
# How long a cancel notice may take to be delivered.
CANCEL_NOTICE_SECS = 5

Report = ReportAttemptSucceeded | ReportAttemptFailed | ReportAttemptAccepted


class Accepted:
    """The endpoint answered 202."""


class ResultRefused(ValueError):
    """An answer the executor will not keep as a result (too big, too deep, out of range)."""


def open_session(allowed: Sequence[Network], limit: int, *,
                 resolver: aiohttp.abc.AbstractResolver | None = None,
                 create_socket: SocketFactory = plain_socket) -> aiohttp.ClientSession:
    """The executor's one HTTP session. Call inside the running event loop."""
    return aiohttp.ClientSession(
        connector=make_connector(allowed, limit, resolver=resolver,
                                 create_socket=create_socket),
        # Bodies are read raw and bounded: a compressed answer could inflate past any
        # limit inside the decompressor, so identity is asked for and required.
        auto_decompress=False,
        # Tenants share the session: one endpoint's cookies must not go to another.
        cookie_jar=aiohttp.DummyCookieJar(),
        # No proxy or netrc from the environment: the address rule must see the target.
        trust_env=False,
    )


@functools.lru_cache(maxsize=4096)
def url_refusal(url: str, allowed: tuple[Network, ...]) -> str | None:
    """Why the address rule refuses ``url`` as written, or None. Remembered: a job's URL is
    called on every attempt, and the strict parse reads it character by character (the
    connect-time check of the resolved address is made on every call regardless)."""
    try:
        check_endpoint_url(url, allowed)
    except UrlRefused as exc:
        return exc.reason
    return None


def headers_for(order: DispatchOrder, token: str | None = None) -> dict[str, str]:
    headers = {
        "X-Run-ID": order.run_id,
        "X-Job-ID": order.job_id,
        "X-Attempt": str(order.attempt),
        "Idempotency-Key": order.idempotency_key,
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
    }
    if token is not None:
        # What the endpoint presents to call back about this attempt (Bearer).
        headers["X-Run-Token"] = token
    if order.debug_mode:
        # The trigger asked for a debug run: the endpoint decides what that means (more
        # logging, a dry run); jobledger only passes it on.
        headers["X-Debug-Mode"] = "true"
    return headers


def report_id(order: DispatchOrder) -> str:
    # One report per attempt: a redelivered order yields the same command id, which the
    # processor answers once.
    return f"report:{order.run_id}:{order.attempt}"


def failure_report(order: DispatchOrder, failure: AttemptFailure,
                   trace: ExecutionTrace | None = None) -> ReportAttemptFailed:
    return ReportAttemptFailed(
        command_id=report_id(order), project_id=order.project_id, job_id=order.job_id,
        issued_at=datetime.now(UTC), actor="executor", awaits_outcome=False,
        run_id=order.run_id, attempt=order.attempt, failure=failure, trace=trace)


async def call_endpoint(session: aiohttp.ClientSession, order: DispatchOrder,
                        allowed: Sequence[Network], token: str | None = None,
                        taken_at: float | None = None) -> Report:
    """POST the payload to the endpoint (then to the fallback if the endpoint is down).
    ``taken_at`` (time.perf_counter) is when the executor took the order."""
    timings = Timings(taken=time.perf_counter() if taken_at is None else taken_at)
    outcome = await _attempt(session, order, order.endpoint_url, allowed, token, timings)
    if (isinstance(outcome, AttemptFailure) and outcome.retryable
            and order.fallback_endpoint_url):
        outcome = await _attempt(session, order, order.fallback_endpoint_url, allowed, token,
                                 timings)
    timings.ended = time.perf_counter()
    trace = trace_of(order, timings)
    if isinstance(outcome, AttemptFailure):
        return failure_report(order, outcome, trace)
    if isinstance(outcome, Accepted):
        return ReportAttemptAccepted(
            command_id=report_id(order), project_id=order.project_id, job_id=order.job_id,
            issued_at=datetime.now(UTC), actor="executor", awaits_outcome=False,
            run_id=order.run_id, attempt=order.attempt, trace=trace)
    status, result = outcome
    return ReportAttemptSucceeded(
        command_id=report_id(order), project_id=order.project_id, job_id=order.job_id,
        issued_at=datetime.now(UTC), actor="executor", awaits_outcome=False,
        run_id=order.run_id, attempt=order.attempt, result=result, status_code=status,
        duration_ms=trace.dispatch_ms, trace=trace)


def trace_of(order: DispatchOrder, timings: Timings) -> ExecutionTrace:
    """The attempt's execution_trace; the queue wait by the wall clock (the processor's
    dispatch time), the rest by this process's monotonic clock."""
    queue_wait, waited = None, 0.0
    if order.dispatched_at is not None:
        waited = max(0.0, timings.taken_wall - order.dispatched_at.timestamp())
        queue_wait = _ms(waited)
    total = None if queue_wait is None else _ms(waited + timings.ended - timings.taken)
    return ExecutionTrace(
        queue_wait_ms=queue_wait, dequeue_ms=timings.span(timings.taken, timings.request),
        connect_ms=timings.connect_ms(), ttfb_ms=timings.span(timings.sent, timings.headers),
        transfer_ms=timings.span(timings.headers, timings.body),
        dispatch_ms=timings.span(timings.request, timings.body or timings.ended),
        total_ms=total)


def _ms(secs: float) -> float:
    return round(secs * 1000, 3)


async def _attempt(session: aiohttp.ClientSession, order: DispatchOrder, url: str,
                   allowed: Sequence[Network], token: str | None,
                   timings: Timings) -> AttemptFailure | Accepted | tuple[int, Any]:
    if (refused := url_refusal(url, tuple(allowed))) is not None:
        return AttemptFailure(kind="refused", message=refused, retryable=False)
    body = msgspec.json.encode(order.payload)
    # aiohttp reads 0 as "no timeout": an order must never hold a slot forever.
    timeout = aiohttp.ClientTimeout(total=max(order.timeout_secs, 1))
    timings.started()
    # Read by the connector, in this task, if the call opens a connection.
    entered = current_timings.set(timings)
    try:
        async with session.post(url, data=body, headers=headers_for(order, token),
                                timeout=timeout, allow_redirects=False) as response:
            timings.headers = time.perf_counter()
            outcome = await _outcome_of(response)
            timings.body = time.perf_counter()
            return outcome
    except TimeoutError:
        return AttemptFailure(kind="timeout",
                              message=f"no response within {order.timeout_secs}s")
    except AddressRefused as exc:
        return AttemptFailure(kind="refused", message=str(exc), retryable=False)
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, AddressRefused):
            return AttemptFailure(kind="refused", message=str(exc.os_error),
                                  retryable=False)
        return AttemptFailure(kind="connection", message=f"{type(exc).__name__}: {exc}")
    except aiohttp.InvalidURL as exc:
        return AttemptFailure(kind="refused", message=f"invalid URL: {exc}", retryable=False)
    except aiohttp.ClientError as exc:
        return AttemptFailure(kind="connection", message=f"{type(exc).__name__}: {exc}")
    finally:
        current_timings.reset(entered)


async def send_cancel_notice(session: aiohttp.ClientSession, order: DispatchOrder,
                             allowed: Sequence[Network], token: str | None) -> str | None:
    """POST the notice that the attempt was asked to stop; the endpoint should stop and
    report (fail or complete). Best effort, once: the run ends at its cancel deadline
    anyway. Returns why it could not be delivered, or None."""
    if (refused := url_refusal(order.endpoint_url, tuple(allowed))) is not None:
        return refused
    headers = {**headers_for(order, token), "X-Jobledger-Notice": "cancel"}
    body = msgspec.json.encode({"type": "run.cancel_requested", "run_id": order.run_id,
                                "attempt": order.attempt, "reason": order.reason})
    try:
        async with session.post(order.endpoint_url, data=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=CANCEL_NOTICE_SECS),
                                allow_redirects=False) as response:
            await read_capped(response.content, MAX_ERROR_BODY_BYTES, truncate=True)
            return None if response.status < 400 else f"endpoint answered {response.status}"
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        return f"{type(exc).__name__}: {exc}"


async def _outcome_of(response: aiohttp.ClientResponse,
                      ) -> AttemptFailure | Accepted | tuple[int, Any]:
    status = response.status
    if status == ACCEPTED:
        await read_capped(response.content, MAX_ERROR_BODY_BYTES, truncate=True)
        return Accepted()
    if not 200 <= status < 300:
        start = await read_capped(response.content, MAX_ERROR_BODY_BYTES, truncate=True)
        text = (start or b"").decode("utf-8", "replace")
        note = " (redirects are not followed)" if 300 <= status < 400 else ""
        retryable = status in RETRYABLE_STATUS or status >= 500
        after = retry_after_secs(response.headers.get("Retry-After")) if retryable else None
        return AttemptFailure(kind="http_status", status_code=status, retryable=retryable,
                              message=f"endpoint answered {status}{note}: {text}",
                              retry_after_secs=after)
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return _invalid(f"endpoint answered with Content-Encoding {encoding[:40]!r}; "
                        "the executor asks for identity")
    declared = response.content_length
    if declared is not None and declared > MAX_RESPONSE_BYTES:
        return _invalid(f"response body of {declared} bytes is over the limit of "
                        f"{MAX_RESPONSE_BYTES} bytes")
    body = await read_capped(response.content, MAX_RESPONSE_BYTES)
    if body is None:
        return _invalid(f"response body is over the limit of {MAX_RESPONSE_BYTES} bytes")
    try:
        return status, decode_result(body)
    except ResultRefused as exc:
        return _invalid(str(exc))


def retry_after_secs(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds or an HTTP date (RFC 9110 10.2.3);
    None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value[:12]), 10**9))
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (at - (now or datetime.now(UTC))).total_seconds())


def _invalid(message: str) -> AttemptFailure:
    # The same answer would come back on a retry: permanent.
    return AttemptFailure(kind="invalid_response", message=message, retryable=False)


async def read_capped(stream: aiohttp.StreamReader, limit: int,
                      truncate: bool = False) -> bytes | None:
    """At most ``limit`` bytes of the body: None if there are more (or the first ``limit``
    with ``truncate``). Never holds more than ``limit`` plus one chunk in memory."""
    data = bytearray()
    while True:
        chunk = await stream.read(_CHUNK)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            return bytes(data[:limit]) if truncate else None


def decode_result(body: bytes) -> Any:
    """The result kept for a 2xx answer: its JSON, or ``{"body": text}`` if it is not JSON.
    Raise ResultRefused for JSON that the pipeline cannot carry (schemas.limits), so the
    attempt fails with a reason instead of poisoning every stage after this one."""
    if not body:
        return None
    try:
        result = msgspec.json.decode(body)
    except RecursionError as exc:
        raise ResultRefused("response JSON is nested too deep to decode") from exc
    except msgspec.DecodeError:
        result = {"body": body.decode("utf-8", "replace")}
    else:
        try:
            check_json_value(result)
        except JsonLimitExceeded as exc:
            raise ResultRefused(f"response JSON is outside the limits at {exc}") from exc
    if len(msgspec.json.encode(result)) > MAX_RESULT_BYTES:
        raise ResultRefused(f"result is over {MAX_RESULT_BYTES} bytes once encoded")
    return result


async def close_session(session: aiohttp.ClientSession) -> None:
    await session.close()
    # Lets the transports of closed connections finish closing (aiohttp's advice).
    await asyncio.sleep(0)
