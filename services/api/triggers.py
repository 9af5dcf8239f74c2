"""From a trigger request to a TriggerRun: the checks no type states (one start time,
a retry cap not below its first delay, the job's payload_schema), and who asked."""

from datetime import datetime, timedelta
from typing import Any

from events.types import RunOverrides
from projections.views import JobView
from schemas.api import TriggerRunRequest
from services.api.errors import invalid
from services.api.payload_schema import PayloadInvalid, validate_payload
from services.config import ApiKey
from services.domain import TriggerRun

# The furthest ahead a run may be scheduled (as delay_secs allows).
MAX_SCHEDULE_AHEAD = timedelta(days=365)


def _overrides(data: TriggerRunRequest) -> RunOverrides | None:
    overrides = RunOverrides(max_attempts=data.max_attempts_override,
                             timeout_secs=data.timeout_secs_override,
                             retry_backoff=data.retry_backoff,
                             retry_initial_delay_secs=data.retry_initial_delay_secs,
                             retry_max_delay_secs=data.retry_max_delay_secs)
    return None if overrides == RunOverrides() else overrides


def _start_of(data: TriggerRunRequest, now: datetime) -> datetime | None:
    if data.scheduled_at is not None and data.delay_secs is not None:
        raise invalid("delay_secs", "give scheduled_at or delay_secs, not both")
    if data.delay_secs is not None:
        return now + timedelta(seconds=data.delay_secs)
    if data.scheduled_at is not None and data.scheduled_at - now > MAX_SCHEDULE_AHEAD:
        raise invalid("scheduled_at", "at most a year ahead")
    return data.scheduled_at


async def check_payload(job: JobView, payload: Any) -> None:
    """422 naming the path where ``payload`` breaks the job's payload_schema."""
    schema = job.spec.get("payload_schema")
    if schema is None:
        return
    try:
        await validate_payload(schema, payload)
    except PayloadInvalid as exc:
        raise invalid(exc.path, f"does not match the job's payload_schema: "
                                f"{exc.reason}") from None


async def trigger_command(key: ApiKey, job: JobView, data: TriggerRunRequest, *,
                          command_id: str, run_id: str, now: datetime,
                          batch_id: str | None = None) -> TriggerRun:
    """The command for one trigger; raises ApiError (422, naming the field) for a request
    the types let through but the job or the rules refuse."""
    initial, cap = data.retry_initial_delay_secs, data.retry_max_delay_secs
    if initial is not None and cap is not None and cap < initial:
        raise invalid("retry_max_delay_secs", "must not be below retry_initial_delay_secs")
    scheduled = _start_of(data, now)
    await check_payload(job, data.payload)
    return TriggerRun(command_id=command_id, project_id=key.project_id, job_id=job.id,
                      issued_at=now, actor=key.role, run_id=run_id, payload=data.payload,
                      metadata=data.metadata, priority=data.priority,
                      idempotency_key=data.idempotency_key,
                      correlation_id=data.correlation_id, batch_id=batch_id,
                      concurrency_key=data.concurrency_key, scheduled_at=scheduled,
                      tags=data.tags, debug_mode=data.debug_mode,
                      overrides=_overrides(data),
                      created_by=f"{key.project_id}:{key.role}")
