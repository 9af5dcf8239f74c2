"""Call one endpoint for one dispatch order and turn what happened into a report command.

Whatever the endpoint does (hang, redirect, answer gigabytes, answer JSON nested 5,000
deep) becomes an AttemptFailure with a reason; nothing an endpoint answers raises out of
``call_endpoint``.
"""

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec

from events.dispatch import DispatchOrder
from events.types import AttemptFailure
from schemas.limits import JsonLimitExceeded, check_json_value
from services.addresses import Network, UrlRefused, check_endpoint_url
from services.domain import ReportAttemptFailed, ReportAttemptSucceeded
from services.executor.guard import AddressRefused, SocketFactory, make_connector, plain_socket

# The body read and the result kept are bounded: the result travels in the report command,
# the event and the outcome, each a Kafka record (1 MB by default), so half of that.
MAX_RESPONSE_BYTES = 512 * 1024
# The result as re-encoded for the report (text that is not JSON is escaped, and can grow).
MAX_RESULT_BYTES = 768 * 1024
# Of an error answer only the start is kept, for the message.
MAX_ERROR_BODY_BYTES = 500
RETRYABLE_STATUS = frozenset({408, 429})
_CHUNK = 64 * 1024

Report = ReportAttemptSucceeded | ReportAttemptFailed


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


def headers_for(order: DispatchOrder) -> dict[str, str]:
    headers = {
        "X-Run-ID": order.run_id,
        "X-Job-ID": order.job_id,
        "X-Attempt": str(order.attempt),
        "Idempotency-Key": order.idempotency_key,
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
    }
    if order.debug_mode:
        # The trigger asked for a debug run: the endpoint decides what that means (more
        # logging, a dry run); jobledger only passes it on.
        headers["X-Debug-Mode"] = "true"
    return headers


def report_id(order: DispatchOrder) -> str:
    # One report per attempt: a redelivered order yields the same command id, which the
    # processor answers once.
    return f"report:{order.run_id}:{order.attempt}"


def failure_report(order: DispatchOrder, failure: AttemptFailure) -> ReportAttemptFailed:
    return ReportAttemptFailed(
        command_id=report_id(order), project_id=order.project_id, job_id=order.job_id,
        issued_at=datetime.now(UTC), actor="executor", awaits_outcome=False,
        run_id=order.run_id, attempt=order.attempt, failure=failure)


async def call_endpoint(session: aiohttp.ClientSession, order: DispatchOrder,
                        allowed: Sequence[Network]) -> Report:
    """POST the payload to the endpoint (then to the fallback if the endpoint is down)."""
    started = time.perf_counter()
    outcome = await _attempt(session, order, order.endpoint_url, allowed)
    if (isinstance(outcome, AttemptFailure) and outcome.retryable
            and order.fallback_endpoint_url):
        outcome = await _attempt(session, order, order.fallback_endpoint_url, allowed)
    if isinstance(outcome, AttemptFailure):
        return failure_report(order, outcome)
    status, result = outcome
    duration_ms = (time.perf_counter() - started) * 1000
    return ReportAttemptSucceeded(
        command_id=report_id(order), project_id=order.project_id, job_id=order.job_id,
        issued_at=datetime.now(UTC), actor="executor", awaits_outcome=False,
        run_id=order.run_id, attempt=order.attempt, result=result, status_code=status,
        duration_ms=round(duration_ms, 3))


async def _attempt(session: aiohttp.ClientSession, order: DispatchOrder, url: str,
                   allowed: Sequence[Network]) -> AttemptFailure | tuple[int, Any]:
    try:
        check_endpoint_url(url, allowed)
    except UrlRefused as exc:
        return AttemptFailure(kind="refused", message=exc.reason, retryable=False)
    body = msgspec.json.encode(order.payload)
    # aiohttp reads 0 as "no timeout": an order must never hold a slot forever.
    timeout = aiohttp.ClientTimeout(total=max(order.timeout_secs, 1))
    try:
        async with session.post(url, data=body, headers=headers_for(order), timeout=timeout,
                                allow_redirects=False) as response:
            return await _outcome_of(response)
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


async def _outcome_of(response: aiohttp.ClientResponse) -> AttemptFailure | tuple[int, Any]:
    status = response.status
    if not 200 <= status < 300:
        start = await read_capped(response.content, MAX_ERROR_BODY_BYTES, truncate=True)
        text = (start or b"").decode("utf-8", "replace")
        note = " (redirects are not followed)" if 300 <= status < 400 else ""
        retryable = status in RETRYABLE_STATUS or status >= 500
        return AttemptFailure(kind="http_status", status_code=status, retryable=retryable,
                              message=f"endpoint answered {status}{note}: {text}")
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
