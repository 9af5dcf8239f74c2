"""TriggerRun: a new run of an enabled job, queued with the job's current settings."""

from events.types import RunTriggered
from services.domain.commands import TriggerRun
from services.domain.results import Rejection, RunEvent
from services.domain.state import Aggregate, accepts_triggers


def decide_trigger(state: Aggregate, command: TriggerRun) -> list[RunEvent] | Rejection:
    spec = state.job.spec
    assert spec is not None
    if not accepts_triggers(state.job):
        return Rejection("conflict", f"job {spec.slug!r} is disabled: it takes no new runs "
                                     "until it is enabled again")
    if command.run_id in state.runs:
        return Rejection("conflict", f"run {command.run_id} already exists")
    return [
        (
            command.run_id,
            RunTriggered(
                payload=command.payload,
                metadata={**spec.default_run_metadata, **command.metadata},
                triggered_by=command.triggered_by,
                priority=command.priority,
                idempotency_key=command.idempotency_key,
                job_version=state.job.version,
                max_attempts=spec.max_attempts,
                timeout_secs=spec.timeout_secs,
                correlation_id=command.correlation_id,
                batch_id=command.batch_id,
                concurrency_key=command.concurrency_key,
            ),
        )
    ]
