"""TriggerRun: a new run of an enabled job, with the job's current settings and the
trigger's own overrides; or, when its idempotency key names a run triggered within the
job's dedup window, that run again and nothing new."""

from datetime import timedelta

from events.types import RunTriggered
from services.domain.commands import TriggerRun
from services.domain.results import Duplicate, Rejection, RunEvent
from services.domain.state import Aggregate, accepts_triggers


def decide_trigger(state: Aggregate, command: TriggerRun) -> list[RunEvent] | Rejection | Duplicate:
    spec = state.job.spec
    assert spec is not None
    now = command.issued_at
    key = command.idempotency_key
    # Before the enabled check: a retried request gets the run it made, whatever the job
    # has become since.
    if key is not None and (seen := state.dedup.get(key)) is not None and now < seen.until:
        return Duplicate(seen.run_id)
    if not accepts_triggers(state.job):
        return Rejection("conflict", f"job {spec.slug!r} is disabled: it takes no new runs "
                                     "until it is enabled again")
    if command.run_id in state.runs:
        return Rejection("conflict", f"run {command.run_id} already exists")
    # A time not after now starts the run at once: "scheduled" only means the future.
    scheduled = command.scheduled_at if (command.scheduled_at or now) > now else None
    # The TTL counts from when the run may start, so a run scheduled further ahead than
    # its TTL does not expire before it could ever run.
    expires = (None if spec.run_ttl_secs is None
               else (scheduled or now) + timedelta(seconds=spec.run_ttl_secs))
    overrides = command.overrides
    return [
        (
            command.run_id,
            RunTriggered(
                payload=command.payload,
                metadata={**spec.default_run_metadata, **command.metadata},
                triggered_by=command.triggered_by,
                priority=command.priority,
                idempotency_key=key,
                job_version=state.job.version,
                max_attempts=(overrides and overrides.max_attempts) or spec.max_attempts,
                timeout_secs=(overrides and overrides.timeout_secs) or spec.timeout_secs,
                correlation_id=command.correlation_id,
                batch_id=command.batch_id,
                concurrency_key=command.concurrency_key,
                scheduled_at=scheduled,
                expires_at=expires,
                dedup_until=(None if key is None
                             else now + timedelta(seconds=spec.dedup_window_secs)),
                overrides=overrides,
                tags=command.tags,
                debug_mode=command.debug_mode,
                created_by=command.created_by,
                continuation_of=command.continuation_of,
                parent_run_id=command.parent_run_id,
                lineage_depth=command.lineage_depth,
                run_type=command.run_type,
            ),
        )
    ]

