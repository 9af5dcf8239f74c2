"""The executor's account of webhook deliveries: each try is recorded on the run (it may
be over: deliveries come after the end), and a 410 Gone disables the webhook."""

from events.types import JobWebhookDisabled, RunWebhookAttempted
from services.domain.commands import DisableWebhook, RecordWebhookDelivery
from services.domain.results import Rejection, RunEvent
from services.domain.state import Aggregate, RunState, webhook_active


def decide_delivery(run: RunState, command: RecordWebhookDelivery) -> list[RunEvent]:
    return [(run.run_id, RunWebhookAttempted(
        message_id=command.message_id, event_type=command.event_type,
        delivery_attempt=command.delivery_attempt, delivered=command.delivered,
        final=command.final, status_code=command.status_code, error=command.error,
        duration_ms=command.duration_ms))]


def decide_disable(state: Aggregate, command: DisableWebhook) -> list[RunEvent] | Rejection:
    if webhook_active(state.job) != command.url:
        # Changed since (or disabled already): the 410 was about another URL.
        return []
    return [(None, JobWebhookDisabled(url=command.url, reason=command.reason))]
