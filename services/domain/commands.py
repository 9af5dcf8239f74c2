"""Commands: what a caller (API, executor, timer) asks the processor to do.

Imperative names, each answered by past-tense events or a rejection. Every command carries
its own id (a repeat is ignored), the job it addresses (the partition key) and the time it
was issued, which is the ``now`` its decision uses.
"""

from datetime import datetime
from typing import Any

import msgspec

from events.types import (
    AttemptFailure,
    DependencyCondition,
    ExecutionTrace,
    JobSpec,
    RunOverrides,
    RunType,
)


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    command_id: str
    project_id: str
    job_id: str
    issued_at: datetime
    actor: str | None = None
    # Whether a caller waits for the answer (the API does). The executor's reports and the
    # timer's requests do not: they get no outcome record and no stored answer, and a
    # repeat of one is told apart by the run's state instead (a report for an attempt
    # that ended is rejected; a run that is no longer due is left alone).
    awaits_outcome: bool = True


class CreateJob(_Command, frozen=True, kw_only=True, tag="job.create"):
    spec: JobSpec


class TriggerRun(_Command, frozen=True, kw_only=True, tag="run.trigger"):
    run_id: str
    payload: Any = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    priority: int = 0
    idempotency_key: str | None = None
    triggered_by: str = "api"
    correlation_id: str | None = None
    batch_id: str | None = None
    concurrency_key: str | None = None
    # When the run may start (None or not after issued_at: at once).
    scheduled_at: datetime | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    debug_mode: bool = False
    overrides: RunOverrides | None = None
    created_by: str | None = None
    # A replay of a dead-lettered run (its id), or a child of a run: its lineage.
    continuation_of: str | None = None
    parent_run_id: str | None = None
    lineage_depth: int = 0
    run_type: RunType | None = None


class TriggerRuns(_Command, frozen=True, kw_only=True, tag="run.trigger_many"):
    """A bulk trigger: its runs decided in one decision, in order, each as its own
    TriggerRun would be, and answered item by item in one answer. One command instead of
    one per run spares each run a command, an outcome and a stored answer."""

    items: list[TriggerRun]


class DispatchRun(_Command, frozen=True, kw_only=True, tag="run.dispatch"):
    run_id: str


class ReportAttemptSucceeded(_Command, frozen=True, kw_only=True, tag="attempt.succeed"):
    """The attempt's result: from its executor (a 2xx answer) or from the endpoint's
    complete callback (actor ``endpoint``)."""

    run_id: str
    attempt: int
    result: Any = None
    status_code: int | None = None
    duration_ms: float | None = None
    trace: ExecutionTrace | None = None


class ReportAttemptFailed(_Command, frozen=True, kw_only=True, tag="attempt.fail"):
    run_id: str
    attempt: int
    failure: AttemptFailure
    trace: ExecutionTrace | None = None


class ReportAttemptAccepted(_Command, frozen=True, kw_only=True, tag="attempt.accept"):
    """The endpoint answered 202: it reports the attempt's end through the callbacks."""

    run_id: str
    attempt: int
    trace: ExecutionTrace | None = None


class RecordHeartbeat(_Command, frozen=True, kw_only=True, tag="run.heartbeat"):
    """The endpoint working on the attempt is alive (the heartbeat callback)."""

    run_id: str
    attempt: int


class ReportProgress(_Command, frozen=True, kw_only=True, tag="run.progress"):
    """The attempt's record counters so far (totals), from the progress callback."""

    run_id: str
    attempt: int
    counters: dict[str, int] = msgspec.field(default_factory=dict)


class LogRunMessage(_Command, frozen=True, kw_only=True, tag="run.message"):
    run_id: str
    attempt: int
    status: int
    text: str
    tool_id: int | None = None


class CancelRun(_Command, frozen=True, kw_only=True, tag="run.cancel"):
    run_id: str
    reason: str = "canceled by user"
    # The system cancels it (its parent was canceled), not a caller.
    by_system: bool = False


class SpawnChild(_Command, frozen=True, kw_only=True, tag="run.spawn_child"):
    """The endpoint working on attempt ``attempt`` of ``run_id`` starts a child run of
    another job (the children callback)."""

    run_id: str
    attempt: int
    child_job_id: str
    child_run_id: str
    run_type: RunType = "task"
    payload: Any = None


class RecordWebhookDelivery(_Command, frozen=True, kw_only=True, tag="webhook.record"):
    """The executor tried to deliver a run's webhook (once per try); taken for any run."""

    run_id: str
    message_id: str
    event_type: str
    delivery_attempt: int
    delivered: bool
    final: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None


class DisableWebhook(_Command, frozen=True, kw_only=True, tag="webhook.disable"):
    """The webhook at ``url`` answered 410 Gone."""

    url: str
    reason: str


class AddDependent(_Command, frozen=True, kw_only=True, tag="job.add_dependent"):
    """``downstream_job_id`` runs after this job's runs (sent to the upstream job)."""

    downstream_job_id: str
    condition: DependencyCondition


class RemoveDependent(_Command, frozen=True, kw_only=True, tag="job.remove_dependent"):
    downstream_job_id: str


class FireDueTimers(_Command, frozen=True, kw_only=True, tag="timers.fire"):
    """Issued by the processor's timer for the runs it found due: requeue each delayed run
    whose retry is due, time out each attempt whose executor has not reported by its
    deadline. The runs are named so that deciding the command again reads the same runs."""

    run_ids: list[str] = msgspec.field(default_factory=list)


class EnableJob(_Command, frozen=True, kw_only=True, tag="job.enable"):
    pass


class DisableJob(_Command, frozen=True, kw_only=True, tag="job.disable"):
    pass


class DeleteJob(_Command, frozen=True, kw_only=True, tag="job.delete"):
    pass


class CancelWaitingRuns(_Command, frozen=True, kw_only=True, tag="job.cancel_waiting"):
    """Cancel the next chunk of a deleted job's queued runs (what ``handle`` cancels with
    every command of a deleted job); sent again until a chunk comes back short."""


class UpdateJob(_Command, frozen=True, kw_only=True, tag="job.update"):
    """Make a new version: ``changes`` (spec field -> new value, already validated by the
    API) are applied to the job's current spec when the command is decided, so two
    concurrent updates of different fields both land."""

    changes: dict[str, Any] = msgspec.field(default_factory=dict)
class FireCronTick(_Command, frozen=True, kw_only=True, tag="cron.tick"):
    """Issued by the processor's timer when the job's ``next_tick_at`` came: fire the
    tick ``tick_at`` (the job's ``next_tick_at`` when the timer looked). A tick that is
    no longer the job's next one was fired already, or its schedule changed: nothing."""

    tick_at: datetime


class WakeJob(_Command, frozen=True, kw_only=True, tag="job.wake"):
    """Issued by the processor's timer when the job asked to be looked at again: a hold
    on its runs may have ended (window, rate limit), or a deleted job still has queued
    runs to cancel. It decides nothing itself; handling it starts what may start."""


class SetProjectQuotas(_Command, frozen=True, kw_only=True, tag="project.set_quotas"):
    """Set the project's quotas; ``job_id`` is the project's own stream
    (``project_stream(project_id)``), so its changes are ordered like a job's."""

    max_queued_runs: int | None = None
    max_runs_per_day: int | None = None


class SetProjectRetention(_Command, frozen=True, kw_only=True, tag="project.set_retention"):
    """Set how many days the project's runs are kept after they end; on the project's
    own stream, like quotas."""

    run_retention_days: int


class StartOperation(_Command, frozen=True, kw_only=True, tag="project.start_operation"):
    """Begin a tracked bulk cancel of the waiting runs of ``job_ids`` (on the project's
    stream, like quotas)."""

    operation_id: str
    job_ids: list[str] = msgspec.field(default_factory=list)
    job_version: int | None = None


class SweepWaitingRuns(_Command, frozen=True, kw_only=True, tag="job.sweep_waiting"):
    """This job's part of operation ``operation_id``: cancel its waiting runs (of
    ``job_version`` only, when set), a chunk per command."""

    operation_id: str
    job_version: int | None = None


def project_stream(project_id: str) -> str:
    """The id under which a project's own events are kept (job ids start with job_)."""
    return f"project:{project_id}"


Command = (
    CreateJob
    | TriggerRun
    | TriggerRuns
    | DispatchRun
    | ReportAttemptSucceeded
    | ReportAttemptFailed
    | ReportAttemptAccepted
    | RecordHeartbeat
    | ReportProgress
    | LogRunMessage
    | SpawnChild
    | RecordWebhookDelivery
    | DisableWebhook
    | AddDependent
    | RemoveDependent
    | CancelRun
    | FireDueTimers
    | EnableJob
    | DisableJob
    | DeleteJob
    | CancelWaitingRuns
    | UpdateJob
    | FireCronTick
    | WakeJob
    | SetProjectQuotas
    | StartOperation
    | SweepWaitingRuns
    | SetProjectRetention
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Command)


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)


def decode_command(raw: bytes) -> Command:
    return _decoder.decode(raw)
