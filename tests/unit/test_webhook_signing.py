"""Webhook secrets and signatures, checked with the Standard Webhooks reference library
(not a copy of our code), and the delivery loop against a real loopback server."""

import base64
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from events.dispatch import DispatchOrder
from services import webhook_secrets
from services.addresses import parse_networks
from services.domain.commands import Command, DisableWebhook, RecordWebhookDelivery
from services.executor.call import close_session, open_session
from services.executor.webhooks import deliver_webhook
from tests.integration.endpoint import Endpoint

SERVICE = b"service-secret-for-tests"
LOOPBACK = parse_networks(["127.0.0.0/8"])


def test_a_generated_secret_is_in_the_standard_form() -> None:
    secret = webhook_secrets.generate()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[len("whsec_"):])) == 32
    assert webhook_secrets.generate() != secret


def test_the_reference_verifier_accepts_our_signature_and_catches_tampering() -> None:
    secret = webhook_secrets.generate()
    body = msgspec.json.encode({"type": "run.completed", "data": {"run_id": "r1"}})
    now = int(datetime.now(UTC).timestamp())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now),
               "webhook-signature": webhook_secrets.signature(
                   webhook_secrets.signing_key(secret), "msg_1", now, body)}
    assert Webhook(secret).verify(body, headers)["data"] == {"run_id": "r1"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"r1", b"r2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook_secrets.generate()).verify(body, headers)


def test_a_sealed_secret_opens_for_its_job_only() -> None:
    secret = webhook_secrets.generate()
    sealed = webhook_secrets.seal(SERVICE, secret, "job_a")
    assert secret not in sealed and sealed.startswith("v1:")
    assert webhook_secrets.unseal(SERVICE, sealed, "job_a") == secret
    for service, job in ((SERVICE, "job_b"), (b"another service", "job_a")):
        with pytest.raises(webhook_secrets.SecretUnreadable):
            webhook_secrets.unseal(service, sealed, job)
    with pytest.raises(webhook_secrets.SecretUnreadable):
        webhook_secrets.unseal(SERVICE, sealed[:-4] + "AAAA", "job_a")


def order(url: str, secret: str, message: str) -> DispatchOrder:
    return DispatchOrder(run_id="r1", job_id="job_a", project_id="p", attempt=1,
                         endpoint_url=url, timeout_secs=5, kind="webhook",
                         payload={"type": "run.completed", "data": {"run_id": "r1"}},
                         message_id=message, event_type="run.completed",
                         secret_sealed=webhook_secrets.seal(SERVICE, secret, "job_a"))


@pytest.mark.parametrize(("path", "tries", "delivered", "disabled"), [
    ("/hook", 1, True, False), ("/hook-flaky", 2, True, False),
    ("/hook-gone", 1, False, True), ("/hook-down", 3, False, False)])
async def test_delivery_retries_records_each_try_and_410_disables(
        path: str, tries: int, delivered: bool, disabled: bool) -> None:
    server = Endpoint()
    await server.start()
    session = open_session(LOOPBACK, 4)
    reports: list[Command] = []

    async def report(command: Command) -> None:
        reports.append(command)

    secret = webhook_secrets.generate()
    message = f"msg_{path.strip('/').replace('/', '_')}"
    try:
        await deliver_webhook(session, order(f"{server.base_url}{path}", secret, message),
                              LOOPBACK, SERVICE, report, waits=(0.0, 0.0))
    finally:
        await close_session(session)
        await server.stop()
    records = [r for r in reports if isinstance(r, RecordWebhookDelivery)]
    assert [r.delivery_attempt for r in records] == list(range(1, tries + 1))
    assert records[-1].final and records[-1].delivered is delivered
    assert not any(r.final for r in records[:-1])
    assert any(isinstance(r, DisableWebhook) for r in reports) is disabled
    for hook in server.hooks:  # every try carries the same id and a valid signature
        assert hook.headers["webhook-id"] == message
        assert Webhook(secret).verify(hook.raw, hook.headers)["type"] == "run.completed"


def test_a_plain_secret_is_read_as_the_reference_library_reads_it() -> None:
    plain = "very-secret-value"
    key = webhook_secrets.signing_key(plain)
    body, now = b"{}", int(datetime.now(UTC).timestamp())
    headers: dict[str, Any] = {"webhook-id": "m", "webhook-timestamp": str(now),
                               "webhook-signature": webhook_secrets.signature(key, "m", now,
                                                                              body)}
    assert Webhook(plain).verify(body, headers) == {}
