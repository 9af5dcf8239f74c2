"""Request and response bodies of the native ``/v1`` API (seed 002's job and run objects).

Request Structs forbid unknown fields so that a misspelt option is an error, not a silent
default; constraints live in the types so the OpenAPI document shows them.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from schemas.text import (
    Attempts,
    Concurrency,
    Cron,
    DedupWindowSecs,
    DelaySecs,
    Description,
    Identifier,
    Metadata,
    Name,
    Priority,
    RateMax,
    RateWindowSecs,
    Reason,
    Secret,
    Slug,
    StartDelaySecs,
    TagKey,
    Tags,
    TimeoutSecs,
    Timezone,
    Token,
    TtlSecs,
    Url,
)

JsonObject = Annotated[dict[str, Any], Meta(description="a JSON object (at most 32 levels "
                                                        "deep, integers within 64 bits)")]


class RateLimitKeyBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """At most ``max`` run starts per ``window_secs`` for runs whose concurrency key is
    ``name``."""

    name: TagKey
    max: RateMax
    window_secs: RateWindowSecs


class CreateJobRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    slug: Slug
    endpoint_url: Url
    description: Description = ""
    group_id: Identifier | None = None
    fallback_endpoint_url: Url | None = None
    max_attempts: Attempts = 3
    timeout_secs: TimeoutSecs = 30
    retry_strategy: Literal["fixed", "exponential", "custom"] = "fixed"
    retry_delays_secs: Annotated[list[DelaySecs], Meta(min_length=1, max_length=50)] = (
        msgspec.field(default_factory=lambda: [5]))
    payload_schema: JsonObject | None = None
    tags: Tags = msgspec.field(default_factory=dict)
    default_run_metadata: Metadata = msgspec.field(default_factory=dict)
    cron: Cron | None = None
    timezone: Timezone = "UTC"
    max_concurrency: Concurrency | None = None
    run_ttl_secs: TtlSecs | None = None
    environment_id: Identifier | None = None
    enabled: bool = True
    # Accepted for seed 002 compatibility; the project always comes from the API key.
    project_id: Identifier | None = None
    execution_window_cron: Cron | None = None
    rate_limit_max: RateMax | None = None
    rate_limit_window_secs: RateWindowSecs | None = None
    max_concurrency_per_key: Annotated[Concurrency | None, Meta(
        description="at most this many runs of one concurrency_key run at once (runs "
                    "without a key are not limited per key)")] = None
    rate_limit_keys: Annotated[list[RateLimitKeyBody], Meta(max_length=50)] = (
        msgspec.field(default_factory=list))
    webhook_url: Url | None = None
    webhook_secret: Secret | None = None
    version_policy: Literal["pin", "latest"] = "pin"
    backwards_compatible: bool = True
    dedup_window_secs: DedupWindowSecs = 86_400
    retry_max_delay_secs: Annotated[DelaySecs | None, Meta(
        description="the longest wait between attempts (exponential delays stop growing "
                    "there); null: no cap")] = None
    retry_jitter: Annotated[bool, Meta(
        description="shorten each wait by up to half, at random, so runs that failed "
                    "together do not retry together")] = False
    heartbeat_timeout_secs: Annotated[TimeoutSecs | None, Meta(
        description="an attempt the endpoint accepted (202) must heartbeat at least this "
                    "often, or the run ends crashed (ZOMBIE_PROCESS)")] = None


class JobResponse(msgspec.Struct, kw_only=True):
    id: str
    project_id: str
    name: str
    slug: str
    description: str
    group_id: str | None
    endpoint_url: str
    fallback_endpoint_url: str | None
    max_attempts: int
    timeout_secs: int
    retry_strategy: str
    retry_delays_secs: list[int]
    payload_schema: dict[str, Any] | None
    tags: dict[str, str]
    default_run_metadata: dict[str, str]
    cron: str | None
    timezone: str
    max_concurrency: int | None
    run_ttl_secs: int | None
    environment_id: str | None
    enabled: bool
    version: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    execution_window_cron: str | None
    rate_limit_max: int | None
    rate_limit_window_secs: int | None
    max_concurrency_per_key: int | None
    rate_limit_keys: list[RateLimitKeyBody]
    dedup_window_secs: int = 86_400
    retry_max_delay_secs: int | None = None
    retry_jitter: bool = False
    heartbeat_timeout_secs: int | None = None
    webhook_url: str | None
    # Never the secret itself: "********" when one is set (the answer that generated it
    # shows it, that once).
    webhook_secret: str | None
    webhook_disabled: Annotated[bool, Meta(
        description="the webhook answered 410 Gone: nothing more is delivered until "
                    "webhook_url or webhook_secret changes")] = False
    version_id: str
    version_policy: str
    backwards_compatible: bool
    updated_by: str | None
    next_tick_at: Annotated[datetime | None, Meta(
        description="when the cron schedule fires next (UTC); null without a cron or while "
                    "the job takes no triggers")] = None


class PatchJobRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A partial definition: an absent field keeps its value, null clears a nullable one.
    Every PATCH makes a new version. ``slug`` cannot change (the job's id follows from it);
    ``enabled`` changes through batch-enable and batch-disable."""

    name: Name | UnsetType = UNSET
    slug: Slug | UnsetType = UNSET
    endpoint_url: Url | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    group_id: Identifier | UnsetType | None = UNSET
    fallback_endpoint_url: Url | UnsetType | None = UNSET
    max_attempts: Attempts | UnsetType = UNSET
    timeout_secs: TimeoutSecs | UnsetType = UNSET
    retry_strategy: Literal["fixed", "exponential", "custom"] | UnsetType = UNSET
    retry_delays_secs: Annotated[list[DelaySecs], Meta(min_length=1, max_length=50)] | \
        UnsetType = UNSET
    payload_schema: JsonObject | UnsetType | None = UNSET
    tags: Tags | UnsetType = UNSET
    default_run_metadata: Metadata | UnsetType = UNSET
    cron: Cron | UnsetType | None = UNSET
    timezone: Timezone | UnsetType = UNSET
    max_concurrency: Concurrency | UnsetType | None = UNSET
    run_ttl_secs: TtlSecs | UnsetType | None = UNSET
    environment_id: Identifier | UnsetType | None = UNSET
    execution_window_cron: Cron | UnsetType | None = UNSET
    rate_limit_max: RateMax | UnsetType | None = UNSET
    rate_limit_window_secs: RateWindowSecs | UnsetType | None = UNSET
    max_concurrency_per_key: Concurrency | UnsetType | None = UNSET
    rate_limit_keys: Annotated[list[RateLimitKeyBody], Meta(max_length=50)] | \
        UnsetType = UNSET
    webhook_url: Url | UnsetType | None = UNSET
    webhook_secret: Secret | UnsetType | None = UNSET
    version_policy: Literal["pin", "latest"] | UnsetType = UNSET
    backwards_compatible: bool | UnsetType = UNSET
    dedup_window_secs: DedupWindowSecs | UnsetType = UNSET
    retry_max_delay_secs: DelaySecs | UnsetType | None = UNSET
    retry_jitter: bool | UnsetType = UNSET
    heartbeat_timeout_secs: TimeoutSecs | UnsetType | None = UNSET


class JobVersionResponse(msgspec.Struct, kw_only=True):
    """One immutable version of a job (seed 002's version object, plus what changed)."""

    id: str
    job_id: str
    version: int
    name: str
    slug: str
    description: str
    cron: str | None
    payload_schema: dict[str, Any] | None
    tags: dict[str, str]
    endpoint_url: str
    fallback_endpoint_url: str | None
    max_attempts: int
    timeout_secs: int
    webhook_url: str | None
    webhook_secret: str | None
    run_ttl_secs: int | None
    created_at: datetime
    version_policy: str
    backwards_compatible: bool
    created_by: str | None
    changed_fields: list[str]


class JobVersionPage(msgspec.Struct, kw_only=True):
    data: list[JobVersionResponse]
    has_more: bool
    next_cursor: str | None


class JobPage(msgspec.Struct, kw_only=True):
    data: list[JobResponse]
    has_more: bool
    next_cursor: str | None


class RunPage(msgspec.Struct, kw_only=True):
    data: list["RunResponse"]
    has_more: bool
    next_cursor: str | None


class RunLineage(msgspec.Struct, kw_only=True):
    """A run's ancestors, its parent first, up to the root."""

    run_id: str
    depth: int
    ancestors: list["RunResponse"]


class LastRun(msgspec.Struct, kw_only=True):
    id: str
    status: str
    created_at: datetime
    finished_at: datetime | None


class JobHealth(msgspec.Struct, kw_only=True):
    """Seed 002's health of a job over a window (see projections/health.py for how each
    figure is counted): the counts, rates and durations are of the runs that ended in the
    window, whether or not they were purged since."""

    job_id: str
    window: str
    total_runs: int
    completed_runs: int
    failed_runs: int
    timed_out_runs: int
    crashed_runs: int
    canceled_runs: int
    expired_runs: int
    success_rate: float | None
    stability: float | None
    avg_duration_secs: float | None
    p95_duration_secs: float | None
    health_score: Annotated[int, Meta(ge=-1, le=100,
                                      description="-1: no run ended in the window")]
    failure_streak: int
    queue_depth: int
    last_run: LastRun | None
    latest_runs: Annotated[int, Meta(
        ge=0, le=1000, description="the job's latest runs made in the window that "
                                   "stability, failure_streak and last_run were read "
                                   "from: at most 1000 (at 1000, older ones were not)")]
    stability_runs: Annotated[int, Meta(
        ge=0, description="of those, the runs that ended with an outcome: what "
                          "stability and failure_streak were judged over")]
    relative_error: Annotated[float, Meta(
        description="how far avg_duration_secs and p95_duration_secs may be from the "
                    "exact ones, relatively")]


class EndedRuns(msgspec.Struct, kw_only=True):
    """Runs that ended, by the state they ended in."""

    completed: int
    failed: int
    timed_out: int
    crashed: int
    canceled: int
    expired: int


class Percentiles(msgspec.Struct, kw_only=True):
    """Nearest-rank percentiles in seconds, each within ``relative_error`` of the exact
    one (or under a millisecond when it is); null without any value."""

    p50: float | None
    p95: float | None
    p99: float | None


class MetricsBucket(msgspec.Struct, kw_only=True):
    start: datetime
    started: Annotated[int, Meta(description="runs first dispatched in the bucket")]
    ended: EndedRuns
    throughput_per_sec: Annotated[float, Meta(
        description="runs ended in the bucket (any end state) per second of its length")]


class Metrics(msgspec.Struct, kw_only=True):
    """A project's (or one job's) runs over a window, from the metric rollups (see the
    README's Metrics section for how each figure is counted)."""

    job_id: str | None
    window: str
    bucket: str
    start: Annotated[datetime, Meta(description="the window rounded out to whole buckets: "
                                                "from here...")]
    end: Annotated[datetime, Meta(description="...to here (exclusive)")]
    started: int
    ended: EndedRuns
    success_rate: Annotated[float | None, Meta(
        description="completed / (completed + failed + timed_out + crashed); null "
                    "without any")]
    throughput_per_sec: float
    duration_secs: Annotated[Percentiles, Meta(
        description="completed runs, last start to end")]
    queue_wait_secs: Annotated[Percentiles, Meta(
        description="runs first dispatched: created (or scheduled, when later) to first "
                    "dispatch")]
    relative_error: Annotated[float, Meta(description="how far a percentile may be from "
                                                      "the exact one, relatively")]
    buckets: list[MetricsBucket]


class BatchCreateItem(msgspec.Struct, kw_only=True):
    """One item of a batch create, answered in its place."""

    index: int
    status: Literal["created", "rejected"]
    job: JobResponse | None = None
    error: "Error | None" = None


class CloneJobRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    slug: Slug
    name: Name | None = None


class BatchToggleRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ids: Annotated[list[Token],
                   Meta(min_length=1, max_length=1000,
                        description="job ids or slugs")]


class BatchToggleResponse(msgspec.Struct, kw_only=True):
    """How many jobs changed state (already in that state, or not found, count 0)."""

    updated: int


class TriggerRunRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    payload: Annotated[Any, Meta(description="any JSON value (at most 32 levels deep, "
                                             "integers within 64 bits)")] = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    priority: Priority = 0
    idempotency_key: Annotated[Token | None, Meta(
        description="a trigger with a key used within the job's dedup_window_secs gets "
                    "that run (200) instead of a new one")] = None
    correlation_id: Token | None = None
    concurrency_key: Annotated[Token | None, Meta(
        description="the lane the run queues in: the job's max_concurrency_per_key counts "
                    "per key, and at equal priority the keys take turns")] = None
    scheduled_at: Annotated[Annotated[datetime, Meta(tz=True)] | None, Meta(
        description="when the run may start, with its UTC offset (at most a year ahead); "
                    "the run is delayed until then. Not with delay_secs")] = None
    delay_secs: Annotated[StartDelaySecs | None, Meta(
        description="start the run this many seconds from now. Not with scheduled_at")] = None
    tags: Tags = msgspec.field(default_factory=dict)
    debug_mode: bool = False
    max_attempts_override: Attempts | None = None
    timeout_secs_override: TimeoutSecs | None = None
    retry_backoff: Literal["fixed", "exponential"] | None = None
    retry_initial_delay_secs: DelaySecs | None = None
    retry_max_delay_secs: Annotated[DelaySecs | None, Meta(
        description="the longest wait between attempts; at least retry_initial_delay_secs")
    ] = None


class BulkTriggerRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Up to 1,000 triggers of one job. Each item is checked on its own: a bad item is
    answered in its place in ``results`` and does not stop the others."""

    items: Annotated[list[Any], Meta(min_length=1, max_length=1000,
                                     description="TriggerRunRequest objects")]


class BulkItemResult(msgspec.Struct, kw_only=True):
    index: int
    status: Annotated[str, Meta(
        description="the run's status (queued or delayed for a new run, the run's current "
                    "status for an idempotency hit), accepted (the processor took it but the "
                    "run is not visible yet), or rejected (see error)")]
    id: str | None = None
    run_token: str | None = None
    idempotency_hit: bool = False
    error: "Error | None" = None


class BulkTriggerResponse(msgspec.Struct, kw_only=True):
    batch_id: str
    total: int
    # New runs: idempotency hits and rejected items are not counted.
    created: int
    results: list[BulkItemResult]


class RunError(msgspec.Struct, kw_only=True):
    kind: str
    message: str
    status_code: int | None = None
    retryable: bool = True
    retry_after_secs: float | None = None


class ExecutionTrace(msgspec.Struct, kw_only=True):
    """Milliseconds, measured by the executor: the wait in the dispatch topic, until the
    request went out, opening the connection (0 when reused), to the answer's first
    byte, reading its body, the HTTP exchange as a whole, and dispatch to report."""

    queue_wait_ms: float | None = None
    dequeue_ms: float | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    transfer_ms: float | None = None
    total_ms: float | None = None
    dispatch_ms: float | None = None


class WebhookDelivery(msgspec.Struct, kw_only=True):
    """One try to deliver the run's webhook (Standard Webhooks, webhook-id message_id)."""

    message_id: str
    event_type: str
    delivery_attempt: int
    delivered: bool
    final: bool
    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None


class AttemptRecord(msgspec.Struct, kw_only=True):
    """One attempt of a run, from its event history."""

    attempt: int
    started_at: datetime
    status: Annotated[str, Meta(description="running, accepted (202, reporting through "
                                            "callbacks), completed, retry_scheduled, failed, "
                                            "timed_out, crashed or canceled")]
    ended_at: datetime | None = None
    endpoint_url: str | None = None
    error: RunError | None = None
    execution_trace: ExecutionTrace | None = None


class RunResponse(msgspec.Struct, kw_only=True):
    """Seed 002's run object, plus max_attempts, correlation_id, updated_at, concurrency_key,
    waiting_reason and error_detail; run_token only in a trigger's answer."""

    id: str
    job_id: str
    project_id: str
    status: str
    attempt: int
    max_attempts: int
    payload: Any
    result: Any
    metadata: dict[str, str]
    error: Annotated[str | None, Meta(description="why the last attempt failed (its "
                                                   "message; error_detail has the rest)")]
    triggered_by: str
    priority: int
    idempotency_key: str | None
    correlation_id: str | None
    job_version: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    next_retry_at: datetime | None
    updated_at: datetime
    concurrency_key: str | None = None
    waiting_reason: Annotated[
        Literal["execution_window", "rate_limit", "concurrency", "concurrency_key",
                "scheduled"] | None,
        Meta(description="why a waiting run does not start: its job's execution window is "
                         "closed (execution_window), its rate limit is used up (rate_limit), "
                         "it is at max_concurrency (concurrency) or its key at "
                         "max_concurrency_per_key (concurrency_key), or it is delayed until "
                         "scheduled_at (scheduled); null when nothing holds it")] = None
    error_detail: RunError | None = None
    scheduled_at: datetime | None = None
    expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    parent_run_id: str | None = None
    workflow_step_run_id: str | None = None
    max_attempts_override: int | None = None
    timeout_secs_override: int | None = None
    retry_backoff: str | None = None
    retry_initial_delay_secs: int | None = None
    retry_max_delay_secs: int | None = None
    execution_trace: ExecutionTrace | None = None
    debug_mode: bool = False
    continuation_of: str | None = None
    lineage_depth: int = 0
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    job_version_id: str | None = None
    created_by: str | None = None
    batch_id: str | None = None
    run_token: Annotated[str | None, Meta(
        description="only in a trigger's answer: attempt 1's token, what the run's "
                    "endpoint presents to call back about it (each attempt's comes to the "
                    "endpoint in X-Run-Token)")] = None
    idempotency_hit: bool = False
    code: Annotated[str | None, Meta(
        description="how the run ended where its status does not say it alone: "
                    "JOB_USER_CANCELED, JOB_SYSTEM_CANCELED, ZOMBIE_PROCESS")] = None
    counters: Annotated[dict[str, int], Meta(
        description="the record counters its endpoint reported (numSuccess, numError, "
                    "numIgnore, numExport, numPagesGenerated, numPagesProcessed), plus "
                    "those of its children")] = msgspec.field(default_factory=dict)
    type: Annotated[Literal["flow", "export", "import", "task"] | None, Meta(
        description="seed 004's job type, for a run spawned as a child")] = None
    purge_at: Annotated[datetime | None, Meta(
        description="seed 004's purgeAt: when the ended run leaves the read models (its "
                    "end plus the project's retention then); null until it ends. After "
                    "it, reads answer 404 RUN_PURGED")] = None
    attempts: Annotated[list[AttemptRecord], Meta(
        description="every attempt so far with its outcome (on a run's read)")] = (
        msgspec.field(default_factory=list))
    webhook_deliveries: Annotated[list[WebhookDelivery], Meta(
        description="every try to deliver the run's webhook (on a run's read)")] = (
        msgspec.field(default_factory=list))


class RunMessage(msgspec.Struct, kw_only=True):
    """Seed 003's job message, with the attempt that logged it and when."""

    status: int
    text: str
    toolId: int | None = None
    attempt: int
    created_at: datetime


class DependencyRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    depends_on: Annotated[str, Meta(min_length=1, max_length=64,
                                    description="the upstream job, by id or slug")]
    condition: Annotated[Literal["on_success", "on_failure", "on_completion"], Meta(
        description="run after each upstream run that completed, failed (failed, "
                    "timed_out, crashed), or either; a canceled or expired run triggers "
                    "nothing")] = "on_success"


class DependencyResponse(msgspec.Struct, kw_only=True):
    job_id: str
    depends_on: str
    condition: str
    created_at: datetime | None = None


class DependencyPage(msgspec.Struct, kw_only=True):
    data: list[DependencyResponse]
    has_more: bool
    next_cursor: str | None


class CancelWaitingRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Which waiting runs to cancel: the project's (nothing given), a job's, or a job
    version's."""

    job_id: Annotated[str, Meta(min_length=1, max_length=64,
                                description="a job, by id or slug")] | None = None
    job_version: Annotated[int, Meta(ge=1, le=2**31, description="only runs triggered "
                                     "with this version (needs job_id)")] | None = None


class OperationResponse(msgspec.Struct, kw_only=True, rename={"canceled_count":
                                                              "canceledCount"}):
    """A tracked bulk operation: each job does its part; done when all have."""

    id: str
    kind: str
    status: Literal["running", "completed"]
    canceled_count: int
    jobs_total: int
    jobs_done: int
    job_version: int | None
    created_at: datetime
    finished_at: datetime | None
    created_by: str | None = None


class DeadLetter(msgspec.Struct, kw_only=True):
    """A run with no attempt left (failed, timed_out or crashed), on the dead-letter list
    until a replay takes it."""

    run: RunResponse
    finished_at: datetime
    replayed_by: str | None = None


class DeadLetterPage(msgspec.Struct, kw_only=True):
    data: list[DeadLetter]
    has_more: bool
    next_cursor: str | None


class CancelRunRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Reason = "canceled by user"


class RunEventResponse(msgspec.Struct, kw_only=True):
    seq: int
    type: str
    version: int
    event_id: str
    command_id: str
    run_id: str | None
    occurred_at: datetime
    data: dict[str, Any]


class Accepted(msgspec.Struct, kw_only=True):
    """202: the processor accepted the command (``Prefer: respond-async``), or its effect
    was not visible within the wait bound; ``location`` is where it will be."""

    command_id: str
    id: str | None = None
    status: Literal["accepted"] = "accepted"
    location: str | None = None
    detail: str = "accepted; not yet visible in the read model, poll location"


QuotaLimit = Annotated[int, Meta(ge=1, le=10_000_000)]


class QuotasRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The project's quotas, replaced as a whole: an absent or null limit is no limit."""

    max_queued_runs: Annotated[QuotaLimit | None, Meta(
        description="the most runs the project may have waiting to start (queued or "
                    "delayed); triggers past it get 429 JOB_QUOTA_EXCEEDED")] = None
    max_runs_per_day: Annotated[QuotaLimit | None, Meta(
        description="the most runs the project may make per UTC day (cron runs count "
                    "but are not refused)")] = None


class QuotasResponse(msgspec.Struct, kw_only=True):
    max_queued_runs: int | None
    max_runs_per_day: int | None
    queued_runs: int
    runs_today: int
    day: str


# services.domain.retention's bounds, repeated (the contract imports nothing of the core;
# tests/unit/test_retention.py holds them equal).
RetentionDays = Annotated[int, Meta(ge=1, le=3650)]


class RetentionRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How long the project's runs are kept after they end (seed 004's purgeAt)."""

    run_retention_days: Annotated[RetentionDays, Meta(
        description="days from a run's end to its purge_at; applies to runs that end "
                    "from now on (1 to 3650; the default is 30)")]


class RetentionResponse(msgspec.Struct, kw_only=True):
    run_retention_days: int
    default: Annotated[bool, Meta(description="true: never set, the default applies")]
    since: Annotated[datetime | None, Meta(
        description="when it was set: runs that ended since then follow it")] = None


class ErrorDetail(msgspec.Struct, kw_only=True):
    """One problem with the request: which field (a path such as ``payload/items/0``, or
    ``body``, ``header:authorization``) and why."""

    field: str
    reason: str


class Error(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: list[ErrorDetail] = msgspec.field(default_factory=list)


class ErrorBody(msgspec.Struct, kw_only=True):
    """The body of every 4xx and 5xx answer."""

    error: Error
    request_id: str
