"""Event bodies: one frozen Struct per thing that happened, past tense, versioned.

Each body has a stable wire name (``TYPE``) and a schema ``VERSION``. Adding a field with
a default needs no new version; a breaking change bumps VERSION, keeps the old shape on
the log readable, and registers an upcaster in ``events.codec``. Bodies accept unknown
fields, so an older subscriber can read what a newer producer wrote.
"""

from datetime import datetime
from typing import Any, ClassVar, Literal

import msgspec

# executor_error: the executor could not carry the order out at all (a bug or an order it
# cannot read); the attempt fails permanently with the error as its message.
# incompatible_version: the job runs its latest version, and an update since the run was
# triggered changed payload_schema without backwards compatibility.
# canceled: the run was canceled while the executor waited for the endpoint's answer.
# endpoint_reported: the endpoint's own fail callback.
ErrorKind = Literal["http_status", "timeout", "connection", "refused", "invalid_response",
                    "executor_error", "incompatible_version", "canceled",
                    "endpoint_reported"]


class ExecutionTrace(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where one attempt's time went, measured by the executor (milliseconds).

    queue_wait: from dispatch (the run.dispatched event) until an executor took the order;
    dequeue: from taking it until the request was sent; connect: opening the connection
    (0 on a reused one); ttfb: from the request sent to the response's first byte;
    transfer: reading the rest of the body; dispatch: the HTTP exchange as a whole (from
    the request started to the body read, fallback included); total: from dispatch until
    the executor's report was ready.
    """

    queue_wait_ms: float | None = None
    dequeue_ms: float | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    transfer_ms: float | None = None
    dispatch_ms: float | None = None
    total_ms: float | None = None


# Seed 004's job tree: a flow spawns export and import children; task is anything else.
RunType = Literal["flow", "export", "import", "task"]
# When a downstream job runs after an upstream run ends: it completed, it failed (failed,
# timed_out, crashed), or either.
DependencyCondition = Literal["on_success", "on_failure", "on_completion"]


class RateLimitKey(msgspec.Struct, frozen=True, kw_only=True):
    """At most ``max`` starts per ``window_secs`` for the runs whose concurrency key is
    ``name``."""

    name: str
    max: int
    window_secs: int


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A job definition as recorded on the log (one immutable version of it).

    ``enabled`` is not part of a version any more (``job.enabled`` / ``job.disabled``
    change it, and ``JobCreated.enabled`` says how a job starts); the field stays so the
    ``job.created`` events written before still read, and new specs mirror the job's state
    when the version was made. The webhook secret is never on the log in clear: only its
    SHA-256 fingerprint (``webhook_secret_sha256``) and the secret sealed under the
    service's key (``webhook_secret_sealed``) are.
    """

    name: str
    slug: str
    endpoint_url: str
    description: str = ""
    group_id: str | None = None
    fallback_endpoint_url: str | None = None
    max_attempts: int = 3
    timeout_secs: int = 30
    retry_strategy: Literal["fixed", "exponential", "custom"] = "fixed"
    retry_delays_secs: list[int] = msgspec.field(default_factory=lambda: [5])
    payload_schema: dict[str, Any] | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    default_run_metadata: dict[str, str] = msgspec.field(default_factory=dict)
    cron: str | None = None
    timezone: str = "UTC"
    max_concurrency: int | None = None
    run_ttl_secs: int | None = None
    environment_id: str | None = None
    enabled: bool = True
    created_by: str | None = None
    execution_window_cron: str | None = None
    rate_limit_max: int | None = None
    rate_limit_window_secs: int | None = None
    # At most this many runs of one concurrency_key run at once (None: no per-key limit).
    max_concurrency_per_key: int | None = None
    rate_limit_keys: list[RateLimitKey] = msgspec.field(default_factory=list)
    webhook_url: str | None = None
    webhook_secret_sha256: str | None = None
    # The secret sealed (AES-GCM, services.webhook_secrets) for the executor to sign with.
    webhook_secret_sealed: str | None = None
    version_policy: Literal["pin", "latest"] = "pin"
    backwards_compatible: bool = True
    # A trigger with an idempotency_key already used by a run triggered within this many
    # seconds gets that run instead of a new one.
    dedup_window_secs: int = 86_400
    # The longest wait between attempts (None: no cap), and whether each wait is
    # shortened by up to half, at random (the same for a given run and attempt), so that
    # runs that failed together do not all come back together.
    retry_max_delay_secs: int | None = None
    retry_jitter: bool = False
    # An attempt the endpoint accepted (202) must heartbeat at least this often, or the
    # run ends ``crashed`` (None: only the attempt's timeout bounds it).
    heartbeat_timeout_secs: int | None = None


class RunOverrides(msgspec.Struct, frozen=True, kw_only=True):
    """What one trigger changed of its job's execution settings (None: the job's)."""

    max_attempts: int | None = None
    timeout_secs: int | None = None
    retry_backoff: Literal["fixed", "exponential"] | None = None
    retry_initial_delay_secs: int | None = None
    retry_max_delay_secs: int | None = None


class _Body(msgspec.Struct, frozen=True, kw_only=True):
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


class JobCreated(_Body, frozen=True, kw_only=True):
    TYPE = "job.created"
    spec: JobSpec
    version: int = 1
    version_id: str | None = None
    # Whether the job starts enabled; None on events written before it existed (then
    # ``spec.enabled`` says).
    enabled: bool | None = None


class RunTriggered(_Body, frozen=True, kw_only=True):
    """A run exists and waits in the queue (status ``queued``)."""

    TYPE = "run.triggered"
    payload: Any = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    triggered_by: str = "api"
    priority: int = 0
    idempotency_key: str | None = None
    job_version: int = 1
    max_attempts: int = 3
    timeout_secs: int = 30
    correlation_id: str | None = None
    # Runs triggered by one bulk request share it.
    batch_id: str | None = None
    # The lane the run queues in: max_concurrency_per_key counts per key, and keys take
    # turns at equal priority (None: the lane of runs without a key).
    concurrency_key: str | None = None
    # Set: the run waits ``delayed`` until then (the time its queue wait starts).
    scheduled_at: datetime | None = None
    # Set (from the job's run_ttl_secs): a run not started by then ends ``expired``.
    expires_at: datetime | None = None
    # Set with an idempotency_key: a trigger with that key until then gets this run.
    dedup_until: datetime | None = None
    overrides: RunOverrides | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    debug_mode: bool = False
    # Who triggered it: the API key's project and role, "cron", or a later trigger kind.
    created_by: str | None = None
    # The run this one replays (from the dead-letter list), the run that spawned it, and
    # how many runs stand before it in that lineage (0: none).
    continuation_of: str | None = None
    parent_run_id: str | None = None
    lineage_depth: int = 0
    # Seed 004's job type (a child names it; None: a plain run).
    run_type: RunType | None = None


class RunDispatched(_Body, frozen=True, kw_only=True):
    """An attempt was handed to the executors (status ``running``)."""

    TYPE = "run.dispatched"
    attempt: int
    endpoint_url: str
    # Past this, with no report from an executor, the attempt counts as timed out (a lost
    # executor or a lost report must not leave a run running forever).
    deadline_at: datetime | None = None
    # What this attempt runs with, as the job's version policy chose (None on events
    # written before they were recorded: then the job's settings of the time).
    fallback_endpoint_url: str | None = None
    timeout_secs: int | None = None
    job_version: int | None = None
    # When it started (what the job's rate limit counts); None on events written before.
    at: datetime | None = None


class RunCompleted(_Body, frozen=True, kw_only=True):
    TYPE = "run.completed"
    attempt: int
    result: Any = None
    status_code: int | None = None
    duration_ms: float | None = None
    # None when the endpoint reported through the complete callback (no HTTP exchange of
    # the executor's ended it).
    trace: ExecutionTrace | None = None


class RunAccepted(_Body, frozen=True, kw_only=True):
    """The endpoint answered 202 to the attempt: it works on the run and reports through
    the callbacks. The run stays ``running`` until ``deadline_at`` (its timeout), and
    must heartbeat by ``heartbeat_due_at`` when the job has a heartbeat timeout."""

    TYPE = "run.accepted"
    attempt: int
    deadline_at: datetime
    heartbeat_due_at: datetime | None = None
    trace: ExecutionTrace | None = None


class RunHeartbeatRecorded(_Body, frozen=True, kw_only=True):
    """The endpoint working on the attempt said it is alive; the next heartbeat is due by
    ``heartbeat_due_at`` (None: the job has no heartbeat timeout)."""

    TYPE = "run.heartbeat_recorded"
    attempt: int
    heartbeat_due_at: datetime | None = None


class RunCrashed(_Body, frozen=True, kw_only=True):
    """An accepted attempt's heartbeats stopped (ZOMBIE_PROCESS): the run ends ``crashed``."""

    TYPE = "run.crashed"
    attempt: int
    heartbeat_due_at: datetime
    reason: str = "no heartbeat from the endpoint"


class RunProgressReported(_Body, frozen=True, kw_only=True):
    """The endpoint's record counters for the run so far (the totals, not increments);
    a parent run shows its own counters plus its children's."""

    TYPE = "run.progress_reported"
    attempt: int
    counters: dict[str, int] = msgspec.field(default_factory=dict)


class RunMessageLogged(_Body, frozen=True, kw_only=True):
    """A message the endpoint logged on the run (seed 003's job messages)."""

    TYPE = "run.message_logged"
    attempt: int
    # Seed 003's message: a status number, the text, and the tool it came from.
    status: int
    text: str
    tool_id: int | None = None


class AttemptFailure(msgspec.Struct, frozen=True, kw_only=True):
    """Why one attempt failed, as the executor saw it."""

    kind: ErrorKind
    message: str
    status_code: int | None = None
    retryable: bool = True
    # The endpoint's Retry-After (429 or 503): the next attempt waits at least this long.
    retry_after_secs: float | None = None


class RunRetryScheduled(_Body, frozen=True, kw_only=True):
    """An attempt failed and another one is due at ``next_retry_at`` (status ``delayed``)."""

    TYPE = "run.retry_scheduled"
    attempt: int
    failure: AttemptFailure
    next_retry_at: datetime
    trace: ExecutionTrace | None = None


class RunRequeued(_Body, frozen=True, kw_only=True):
    """A delayed run's time came: it waits in the queue again (status ``queued``)."""

    TYPE = "run.requeued"
    next_attempt: int


class RunFailed(_Body, frozen=True, kw_only=True):
    """The last attempt failed; ``status`` says how (``failed`` or ``timed_out``)."""

    TYPE = "run.failed"
    attempt: int
    failure: AttemptFailure
    status: Literal["failed", "timed_out"] = "failed"
    trace: ExecutionTrace | None = None


class RunCancelRequested(_Body, frozen=True, kw_only=True):
    """Cancel asked for a running run; it ends when the executor reports (``canceling``)."""

    TYPE = "run.cancel_requested"
    reason: str = "canceled by user"
    requested_by: str | None = None
    # The attempt ends ``canceled`` when the endpoint (or its executor) acknowledges, or
    # at this time at the latest (None on events written before it was recorded).
    deadline_at: datetime | None = None


# JOB_USER_CANCELED: canceled before it ran; JOB_SYSTEM_CANCELED: the system stopped it
# (a running attempt stopped on request, a deleted job's waiting run, a parent's cancel).
CancelCode = Literal["JOB_USER_CANCELED", "JOB_SYSTEM_CANCELED"]


class RunCanceled(_Body, frozen=True, kw_only=True):
    TYPE = "run.canceled"
    reason: str = "canceled by user"
    by_system: bool = False
    code: CancelCode | None = None


class JobEnabled(_Body, frozen=True, kw_only=True):
    TYPE = "job.enabled"
    by: str | None = None


class JobDisabled(_Body, frozen=True, kw_only=True):
    """The job takes no new runs (triggers are refused); runs it already has go on."""

    TYPE = "job.disabled"
    by: str | None = None


class JobDeleted(_Body, frozen=True, kw_only=True):
    """The job is gone: no reads, no commands, its slug is not taken again. Its runs and
    their history stay readable; its waiting runs are canceled ("job deleted"), running
    ones may finish."""

    TYPE = "job.deleted"
    by: str | None = None


class JobUpdated(_Body, frozen=True, kw_only=True):
    """A new immutable version of the job's definition: the whole spec, not a diff."""

    TYPE = "job.updated"
    spec: JobSpec
    version: int
    version_id: str
    changed_fields: list[str] = msgspec.field(default_factory=list)
    # False: runs triggered under an older version must not run under this version's
    # payload_schema when the job runs its latest version.
    backwards_compatible: bool = True
    updated_by: str | None = None
class JobScheduleSet(_Body, frozen=True, kw_only=True):
    """The job's cron schedule changed (created, edited, enabled, disabled, deleted):
    ``next_tick_at`` is its next tick, computed from the time of the change; null, with
    ``cron`` null, when the job has no schedule that fires."""

    TYPE = "job.schedule_set"
    next_tick_at: datetime | None = None
    cron: str | None = None
    timezone: str | None = None


class JobCronTicked(_Body, frozen=True, kw_only=True):
    """A cron tick fired and triggered the run ``run_id``. ``tick_at`` is the tick that
    fired: after downtime the latest one due, with the ``missed`` earlier ticks skipped
    (counted up to 1000). ``next_tick_at`` is the first tick after the firing."""

    TYPE = "job.cron_ticked"
    tick_at: datetime
    run_id: str
    next_tick_at: datetime | None = None
    missed: int = 0


class RunExpired(_Body, frozen=True, kw_only=True):
    """A run was not started by its ``expires_at`` (the job's run_ttl_secs): it ends
    ``expired`` without an attempt."""

    TYPE = "run.expired"
    expires_at: datetime


class JobDispatchHeld(_Body, frozen=True, kw_only=True):
    """The job's queued runs may not start until ``until`` (its next window opening, or
    when its rate limit has room again), for ``reason``; both null: the hold ended (runs
    may start, or none wait). Recorded when the hold changes, not per run held."""

    TYPE = "job.dispatch_held"
    until: datetime | None = None
    reason: Literal["execution_window", "rate_limit"] | None = None


class RunChildSpawned(_Body, frozen=True, kw_only=True):
    """The endpoint working on the attempt spawned a child run of ``child_job_id`` (the
    processor then triggers it there, with this run as its parent)."""

    TYPE = "run.child_spawned"
    attempt: int
    child_job_id: str
    child_run_id: str
    run_type: RunType = "task"
    payload: Any = None


class JobDependentAdded(_Body, frozen=True, kw_only=True):
    """``downstream_job_id`` runs after each run of this job that ends as ``condition``
    says (recorded on the upstream job, which decides when to trigger it)."""

    TYPE = "job.dependent_added"
    downstream_job_id: str
    condition: DependencyCondition
    by: str | None = None


class JobDependentRemoved(_Body, frozen=True, kw_only=True):
    TYPE = "job.dependent_removed"
    downstream_job_id: str
    by: str | None = None


class RunWebhookAttempted(_Body, frozen=True, kw_only=True):
    """One delivery attempt of the run's webhook (for its terminal event): signed per
    Standard Webhooks with ``message_id`` as webhook-id, the same on every try."""

    TYPE = "run.webhook_attempted"
    message_id: str
    event_type: str
    delivery_attempt: int
    delivered: bool
    # No further try follows (delivered, refused for good, or the tries ran out).
    final: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None


class JobWebhookDisabled(_Body, frozen=True, kw_only=True):
    """The webhook answered 410 Gone: no more deliveries to ``url`` until the job's
    webhook_url or webhook_secret is changed."""

    TYPE = "job.webhook_disabled"
    url: str
    reason: str


class ProjectOperationStarted(_Body, frozen=True, kw_only=True):
    """A tracked bulk operation began (on the project's stream): cancel the waiting runs
    of ``job_ids`` (of ``job_version`` only, when set). Each job reports its part with
    job.sweep_finished; the operation is done when all have."""

    TYPE = "project.operation_started"
    operation_id: str
    kind: Literal["cancel_waiting"] = "cancel_waiting"
    job_ids: list[str] = msgspec.field(default_factory=list)
    job_version: int | None = None
    by: str | None = None


class JobSweepStarted(_Body, frozen=True, kw_only=True):
    """The job cancels its waiting runs (queued or delayed) triggered up to its event
    ``up_to`` (and of ``job_version`` only, when set), a chunk per command."""

    TYPE = "job.sweep_started"
    operation_id: str
    up_to: int
    job_version: int | None = None


class JobSweepProgressed(_Body, frozen=True, kw_only=True):
    """A chunk was swept: runs triggered up to event ``cursor`` are done."""

    TYPE = "job.sweep_progressed"
    operation_id: str
    cursor: int
    canceled: int


class JobSweepFinished(_Body, frozen=True, kw_only=True):
    """The job's part of the operation is done: ``canceled`` runs in all (``superseded``:
    a later operation on the job took over the rest)."""

    TYPE = "job.sweep_finished"
    operation_id: str
    canceled: int
    superseded: bool = False


class ProjectQuotasSet(_Body, frozen=True, kw_only=True):
    """An admin set the project's quotas (null: no limit). Recorded on the project's own
    stream (job id ``project:<project id>``), which holds nothing else."""

    TYPE = "project.quotas_set"
    max_queued_runs: int | None = None
    max_runs_per_day: int | None = None
    by: str | None = None


class ProjectRetentionSet(_Body, frozen=True, kw_only=True):
    """An admin set how long the project's runs are kept after they end (seed 004's
    purgeAt). On the project's own stream, like quotas. It applies to the runs that end
    at or after the event's ``occurred_at``; runs that ended before keep their purge_at."""

    TYPE = "project.retention_set"
    run_retention_days: int
    by: str | None = None


Event = (
    JobCreated
    | RunTriggered
    | RunDispatched
    | RunCompleted
    | RunRetryScheduled
    | RunRequeued
    | RunFailed
    | RunCancelRequested
    | RunCanceled
    | JobEnabled
    | JobDisabled
    | JobDeleted
    | JobUpdated
    | JobScheduleSet
    | JobCronTicked
    | RunExpired
    | JobDispatchHeld
    | ProjectQuotasSet
    | RunAccepted
    | RunHeartbeatRecorded
    | RunCrashed
    | RunProgressReported
    | RunMessageLogged
    | RunChildSpawned
    | JobDependentAdded
    | JobDependentRemoved
    | RunWebhookAttempted
    | JobWebhookDisabled
    | ProjectOperationStarted
    | JobSweepStarted
    | JobSweepProgressed
    | JobSweepFinished
    | ProjectRetentionSet
)

EVENT_TYPES: dict[str, type[_Body]] = {
    cls.TYPE: cls
    for cls in (
        JobCreated,
        RunTriggered,
        RunDispatched,
        RunCompleted,
        RunRetryScheduled,
        RunRequeued,
        RunFailed,
        RunCancelRequested,
        RunCanceled,
        JobEnabled,
        JobDisabled,
        JobDeleted,
        JobUpdated,
        JobScheduleSet,
        JobCronTicked,
        RunExpired,
        JobDispatchHeld,
        ProjectQuotasSet,
        RunAccepted,
        RunHeartbeatRecorded,
        RunCrashed,
        RunProgressReported,
        RunMessageLogged,
        RunChildSpawned,
        JobDependentAdded,
        JobDependentRemoved,
        RunWebhookAttempted,
        JobWebhookDisabled,
        ProjectOperationStarted,
        JobSweepStarted,
        JobSweepProgressed,
        JobSweepFinished,
        ProjectRetentionSet,
    )
}
