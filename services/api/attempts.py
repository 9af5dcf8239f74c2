"""A run's attempts and messages, read from its event history (the log's own record;
nothing is kept twice)."""

from typing import Any

from projections.views import RunEventView
from schemas.api import AttemptRecord, ExecutionTrace, RunError, WebhookDelivery

# How each event that ends (or hands over) an attempt sets its outcome.
_ENDS = {"run.completed": "completed", "run.retry_scheduled": "retry_scheduled",
         "run.crashed": "crashed", "run.canceled": "canceled"}


def attempts_of(events: list[RunEventView]) -> list[AttemptRecord]:
    attempts: list[AttemptRecord] = []
    for event in events:
        data = event.data
        if event.type == "run.dispatched":
            attempts.append(AttemptRecord(attempt=data["attempt"], started_at=event.occurred_at,
                                          status="running",
                                          endpoint_url=data.get("endpoint_url")))
            continue
        if not attempts or attempts[-1].ended_at is not None:
            continue
        current = attempts[-1]
        if event.type == "run.accepted":
            current.status = "accepted"
        elif event.type in _ENDS or event.type == "run.failed":
            current.status = data.get("status", "failed") if event.type == "run.failed" \
                else _ENDS[event.type]
            current.ended_at = event.occurred_at
        else:
            continue
        if (failure := data.get("failure")) is not None:
            current.error = RunError(**failure)
        if (trace := data.get("trace")) is not None:
            current.execution_trace = ExecutionTrace(**trace)
    return attempts


def messages_of(events: list[RunEventView]) -> list[dict[str, Any]]:
    """Seed 003's message objects, oldest first, with when and in which attempt."""
    return [{"status": e.data["status"], "text": e.data["text"], "toolId": e.data.get("tool_id"),
             "attempt": e.data["attempt"], "created_at": e.occurred_at}
            for e in events if e.type == "run.message_logged"]


def deliveries_of(events: list[RunEventView]) -> list[WebhookDelivery]:
    return [WebhookDelivery(**{k: v for k, v in e.data.items()
                               if k in WebhookDelivery.__struct_fields__}, at=e.occurred_at)
            for e in events if e.type == "run.webhook_attempted"]
