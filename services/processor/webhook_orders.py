"""The webhook a run's end sends: a dispatch order of kind ``webhook`` carrying the
Standard Webhooks message ({type, timestamp, data}); the executor signs and delivers it."""

from typing import Any

import msgspec

from events.dispatch import DispatchOrder
from events.envelope import Envelope
from events.types import Event, RunCanceled, RunCompleted, RunCrashed, RunExpired, RunFailed
from services.domain import Aggregate
from services.domain.state import webhook_active

# How long one delivery try may take.
WEBHOOK_TIMEOUT_SECS = 10
_ENDINGS = (RunCompleted, RunFailed, RunCrashed, RunCanceled, RunExpired)


def webhook_order(envelope: Envelope, event: Event, after: Aggregate) -> DispatchOrder | None:
    """The order for ``event`` if it ends a run of a job whose webhook is active."""
    if not isinstance(event, _ENDINGS) or envelope.run_id is None:
        return None
    url = webhook_active(after.job)
    run = after.runs.get(envelope.run_id)
    if url is None or run is None:
        return None
    assert after.job.spec is not None
    data: dict[str, Any] = {"run_id": run.run_id, "job_id": envelope.job_id,
                            "project_id": envelope.project_id, "status": str(run.status),
                            "attempt": run.attempt}
    if isinstance(event, RunCompleted):
        data["result"] = event.result
    elif isinstance(event, RunFailed):
        data["error"] = msgspec.to_builtins(event.failure)
    elif isinstance(event, RunCanceled):
        data["reason"], data["code"] = event.reason, event.code
    message = {"type": event.TYPE, "timestamp": envelope.occurred_at.isoformat(),
               "data": data}
    return DispatchOrder(
        run_id=run.run_id, job_id=envelope.job_id, project_id=envelope.project_id,
        attempt=run.attempt, endpoint_url=url, timeout_secs=WEBHOOK_TIMEOUT_SECS,
        payload=message, kind="webhook", message_id=f"msg_{envelope.event_id}",
        event_type=event.TYPE, secret_sealed=after.job.spec.webhook_secret_sealed)
