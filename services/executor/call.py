"""Call one endpoint for one dispatch order and turn what happened into a report command."""

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from events.dispatch import DispatchOrder
from events.types import AttemptFailure
from services.domain import ReportAttemptFailed, ReportAttemptSucceeded
from services.executor.guard import AddressRefused, Network, check_url

MAX_RESPONSE_BYTES = 1024 * 1024
RETRYABLE_STATUS = frozenset({408, 429})

Report = ReportAttemptSucceeded | ReportAttemptFailed


def headers_for(order: DispatchOrder) -> dict[str, str]:
    return {
        "X-Run-ID": order.run_id,
        "X-Job-ID": order.job_id,
        "X-Attempt": str(order.attempt),
        "Idempotency-Key": order.idempotency_key,
        "Content-Type": "application/json",
    }


async def call_endpoint(
    client: httpx.AsyncClient, order: DispatchOrder, allowed: list[Network]
) -> Report:
    """POST the payload to the endpoint (then to the fallback if the endpoint is down)."""
    started = time.perf_counter()
    outcome = await _attempt(client, order, order.endpoint_url, allowed)
    if (isinstance(outcome, AttemptFailure) and outcome.retryable
            and order.fallback_endpoint_url):
        outcome = await _attempt(client, order, order.fallback_endpoint_url, allowed)
    duration_ms = (time.perf_counter() - started) * 1000
    # One report per attempt: a redelivered order yields the same command id, which the
    # processor answers once.
    command_id = f"report:{order.run_id}:{order.attempt}"
    now = datetime.now(UTC)
    if isinstance(outcome, AttemptFailure):
        return ReportAttemptFailed(
            command_id=command_id, project_id=order.project_id, job_id=order.job_id,
            issued_at=now, actor="executor", run_id=order.run_id, attempt=order.attempt,
            failure=outcome)
    status, result = outcome
    return ReportAttemptSucceeded(
        command_id=command_id, project_id=order.project_id, job_id=order.job_id,
        issued_at=now, actor="executor", run_id=order.run_id, attempt=order.attempt,
        result=result, status_code=status, duration_ms=round(duration_ms, 3))


async def _attempt(
    client: httpx.AsyncClient, order: DispatchOrder, url: str, allowed: list[Network]
) -> AttemptFailure | tuple[int, Any]:
    try:
        await check_url(url, allowed)
    except AddressRefused as exc:
        return AttemptFailure(kind="refused", message=str(exc), retryable=False)
    body = msgspec.json.encode(order.payload)
    try:
        response = await client.post(url, content=body, headers=headers_for(order),
                                     timeout=order.timeout_secs)
    except httpx.TimeoutException:
        return AttemptFailure(kind="timeout",
                              message=f"no response within {order.timeout_secs}s")
    except httpx.HTTPError as exc:
        return AttemptFailure(kind="connection", message=f"{type(exc).__name__}: {exc}")
    status = response.status_code
    if not 200 <= status < 300:
        retryable = status in RETRYABLE_STATUS or status >= 500
        return AttemptFailure(kind="http_status", status_code=status, retryable=retryable,
                              message=f"endpoint answered {status}: {response.text[:500]}")
    if len(response.content) > MAX_RESPONSE_BYTES:
        return AttemptFailure(kind="invalid_response", retryable=False,
                              message=f"response body over {MAX_RESPONSE_BYTES} bytes")
    return status, _result_of(response)


def _result_of(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return {"body": response.text}
