"""Deliver a run's webhook per the Standard Webhooks spec: headers webhook-id (the same
on every try, so receivers can drop repeats), webhook-timestamp and webhook-signature
(``v1,<base64 HMAC-SHA256 of id.timestamp.body>``). Tried a few times with growing
waits; a 2xx delivers, 410 Gone disables the webhook, anything else tries again. Every
try is reported, so the run shows its deliveries.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import aiohttp
import msgspec

from events.dispatch import DispatchOrder
from services import webhook_secrets
from services.addresses import Network
from services.domain.commands import Command, DisableWebhook, RecordWebhookDelivery
from services.executor.call import MAX_ERROR_BODY_BYTES, read_capped, url_refusal

# The waits before the 2nd, 3rd, ... try (5 tries over about 15 s).
RETRY_WAITS_SECS = (1.0, 2.0, 4.0, 8.0)
GONE = 410

Report = Callable[[Command], Awaitable[None]]


class _Try(msgspec.Struct):
    delivered: bool = False
    gone: bool = False
    permanent: bool = False
    status_code: int | None = None
    error: str | None = None


async def deliver_webhook(session: aiohttp.ClientSession, order: DispatchOrder,
                          allowed: Sequence[Network], service_secret: bytes,
                          report: Report, waits: Sequence[float] = RETRY_WAITS_SECS) -> None:
    assert order.message_id is not None and order.event_type is not None
    body = msgspec.json.encode(order.payload)
    key = _key(order, service_secret)
    for number in range(1, len(waits) + 2):
        started = time.perf_counter()
        outcome = (_Try(permanent=True, error="the webhook secret cannot be opened by this "
                        "service's key") if key is None
                   else await _try(session, order, allowed, key, body))
        final = outcome.delivered or outcome.gone or outcome.permanent or number > len(waits)
        await report(RecordWebhookDelivery(
            command_id=f"webhook:{order.message_id}:{number}", project_id=order.project_id,
            job_id=order.job_id, issued_at=datetime.now(UTC), actor="executor",
            awaits_outcome=False, run_id=order.run_id, message_id=order.message_id,
            event_type=order.event_type, delivery_attempt=number,
            delivered=outcome.delivered, final=final, status_code=outcome.status_code,
            error=outcome.error, duration_ms=round((time.perf_counter() - started) * 1000, 3)))
        if outcome.gone:
            await report(DisableWebhook(
                command_id=f"webhook:{order.message_id}:gone", project_id=order.project_id,
                job_id=order.job_id, issued_at=datetime.now(UTC), actor="executor",
                awaits_outcome=False, url=order.endpoint_url,
                reason=f"{order.endpoint_url} answered 410 Gone"))
        if final:
            return
        await asyncio.sleep(waits[number - 1])


def _key(order: DispatchOrder, service_secret: bytes) -> bytes | None:
    if order.secret_sealed is None:
        return None
    try:
        secret = webhook_secrets.unseal(service_secret, order.secret_sealed, order.job_id)
    except webhook_secrets.SecretUnreadable:
        return None
    return webhook_secrets.signing_key(secret) or None


async def _try(session: aiohttp.ClientSession, order: DispatchOrder,
               allowed: Sequence[Network], key: bytes, body: bytes) -> _Try:
    if (refused := url_refusal(order.endpoint_url, tuple(allowed))) is not None:
        return _Try(permanent=True, error=refused)
    assert order.message_id is not None
    timestamp = int(time.time())
    headers = {"webhook-id": order.message_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": webhook_secrets.signature(key, order.message_id,
                                                              timestamp, body),
               "Content-Type": "application/json", "Accept-Encoding": "identity"}
    try:
        async with session.post(order.endpoint_url, data=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=order.timeout_secs),
                                allow_redirects=False) as response:
            await read_capped(response.content, MAX_ERROR_BODY_BYTES, truncate=True)
            status = response.status
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        return _Try(error=f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= status < 300:
        return _Try(delivered=True, status_code=status)
    return _Try(gone=status == GONE, status_code=status,
                error=f"the webhook answered {status}")
