"""The state the processor keeps per job, built only by ``evolve``."""

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec

from events.types import JobSpec, RunOverrides
from services.domain.pacing import RateCounter


class RunStatus(StrEnum):
    DELAYED = "delayed"
    QUEUED = "queued"
    RUNNING = "running"
    CANCELING = "canceling"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CRASHED = "crashed"
    CANCELED = "canceled"
    EXPIRED = "expired"


TERMINAL = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.TIMED_OUT,
        RunStatus.CRASHED,
        RunStatus.CANCELED,
        RunStatus.EXPIRED,
    }
)


class PinnedSettings(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What a run of a ``pin`` job keeps of the version it was triggered with, besides
    max_attempts and timeout_secs (on the run already). Kept only under ``pin``, as an
    array, so a queued run stays small."""

    endpoint_url: str
    fallback_endpoint_url: str | None = None
    retry_strategy: str = "fixed"
    retry_delays_secs: list[int] = msgspec.field(default_factory=lambda: [5])


# How many runs may stand before a run in its lineage (parents, dependencies, replays):
# deeper is a loop nobody watches.
MAX_LINEAGE_DEPTH = 100
# Children one run may spawn, and jobs that may run after one job.
MAX_CHILDREN = 1000
MAX_DEPENDENTS = 100


class ChildRef(msgspec.Struct, frozen=True, array_like=True):
    """A child run a run spawned (on another job's stream): what its cancel reaches."""

    job_id: str
    run_id: str


class RunState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What decisions about one run need to know; the read model holds the rest.

    Stored without its default fields (``omit_defaults``): the processor keeps one per
    run, so a field most runs leave unset costs them nothing."""

    run_id: str
    status: RunStatus
    job_id: str = ""
    # Dispatch order among queued runs: higher priority first, then the lower position
    # (the job's seq when the run was queued, so first in, first out).
    priority: int = 0
    position: int = 0
    attempt: int = 0
    max_attempts: int = 3
    timeout_secs: int = 30
    payload: Any = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    next_retry_at: datetime | None = None
    deadline_at: datetime | None = None
    job_version: int = 0
    pinned: PinnedSettings | None = None
    # Its lane (None: the lane of runs without a key) and its fairness round: set each
    # time it enters the queue from its key's next round (see evolve), so that at equal
    # priority the keys take turns.
    concurrency_key: str | None = None
    round: int = 0
    # A run not started (attempt 0) by then expires (the job's run_ttl_secs).
    expires_at: datetime | None = None
    overrides: RunOverrides | None = None
    debug_mode: bool = False
    # The endpoint answered 202 to the current attempt: it reports through callbacks,
    # and heartbeats by heartbeat_due_at when the job has a heartbeat timeout.
    accepted: bool = False
    heartbeat_due_at: datetime | None = None
    lineage_depth: int = 0
    children: list[ChildRef] = msgspec.field(default_factory=list)
    # The job's seq when the run was triggered (its position changes when it requeues;
    # this does not): what a sweep of waiting runs goes by.
    born: int = 0


class KeyState(msgspec.Struct, frozen=True, kw_only=True):
    """One concurrency key of a job: its own small record, so the job's record does not
    grow with the number of keys. It exists while the key has runs queued or running
    (``live``); the next run the key queues takes ``next_round``."""

    job_id: str
    key: str  # "" for the runs without a key
    queued: int = 0
    running: int = 0
    next_round: int = 0

    def live(self) -> bool:
        return bool(self.queued or self.running)


class ItemAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How one item of a bulk trigger (TriggerRuns) was answered."""

    run_id: str
    rejected: bool = False
    code: str | None = None
    reason: str | None = None
    # The item's idempotency key named a run of the dedup window (``run_id``).
    idempotency_hit: bool = False


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """How a command was answered; the processor keeps it by command id so that a repeated
    command gets the same answer and no second effect."""

    seq: int
    run_id: str | None = None
    rejected: bool = False
    code: str | None = None
    reason: str | None = None
    # The trigger's idempotency key named a run of the dedup window (``run_id``).
    idempotency_hit: bool = False
    # A bulk trigger's items, in order.
    items: list[ItemAnswer] | None = None


class DedupRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The run an idempotency key of a job last triggered, and until when a trigger with
    the key gets that run instead of a new one."""

    run_id: str
    until: datetime


class Sweep(msgspec.Struct, frozen=True, kw_only=True):
    """A bulk cancel of the job's waiting runs in progress: those born up to ``up_to``
    (of ``job_version`` only, when set); done up to ``cursor``, ``canceled`` so far."""

    operation_id: str
    up_to: int
    job_version: int | None = None
    cursor: int = 0
    canceled: int = 0


class CronSchedule(msgspec.Struct, frozen=True):
    """A cron expression and the IANA zone it is read in."""

    cron: str
    timezone: str


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """A job's definition, its event sequence, and how many of its runs wait, are delayed
    or run.

    Counts, not lists: the job's record is rewritten on every command, so its size must not
    grow with the backlog. The runs live apart (one record each); which queued run starts
    next is ``dispatch_order`` over the queued runs, which the processor keeps indexed.
    """

    job_id: str
    project_id: str
    spec: JobSpec | None = None
    version: int = 0
    seq: int = 0
    queued_count: int = 0
    delayed_count: int = 0
    # Running and canceling runs: what max_concurrency limits.
    running_count: int = 0
    # Set by job.created, job.enabled and job.disabled; None in a record stored before
    # the field existed (then the spec's own ``enabled`` says).
    enabled: bool | None = None
    updated_by: str | None = None
    deleted: bool = False
    # Runs triggered under a version below this one may not run under the latest version:
    # that version changed payload_schema without backwards compatibility.
    compat_floor: int = 0

    # The cron schedule next_tick_at was computed for (None: no schedule fires), its
    # next tick, and the last tick that fired (ticks only move forward: a tick never
    # fires twice, so the run id derived from it is never reused).
    schedule_of: CronSchedule | None = None
    next_tick_at: datetime | None = None
    last_tick_at: datetime | None = None
    # The highest fairness round dispatched so far: a key that queues again starts here
    # (no credit saved up while it was idle).
    served_round: int = 0
    # Starts counted against the rate limit (only while the job has one).
    rate: RateCounter | None = None
    # Set by job.dispatch_held: no queued run starts before then, and why.
    held_until: datetime | None = None
    held_reason: str | None = None
    # Jobs that run after this job's runs end: downstream job id -> condition.
    dependents: dict[str, str] = msgspec.field(default_factory=dict)
    # The webhook_url that answered 410 Gone: nothing more is delivered to it.
    webhook_disabled_url: str | None = None
    # A bulk cancel of its waiting runs in progress (it is due at once until done).
    sweep: Sweep | None = None


def is_enabled(job: JobState) -> bool:
    if job.enabled is not None:
        return job.enabled
    return job.spec is not None and job.spec.enabled


def accepts_triggers(job: JobState) -> bool:
    """Whether the job takes new runs, from callers and from its cron alike."""
    return job.spec is not None and not job.deleted and is_enabled(job)


def wanted_schedule(job: JobState) -> CronSchedule | None:
    """The schedule the job should tick on now: its cron while it takes triggers."""
    if job.spec is None or job.spec.cron is None or not accepts_triggers(job):
        return None
    return CronSchedule(job.spec.cron, job.spec.timezone)


# A wake-up due at once: a deleted job with queued runs left to cancel. Distinct for each
# version of the job's record, so that each chunk canceled asks for the next one at once
# (the timer only backs off from a job whose due time stays the same).
_AT_ONCE = datetime(2000, 1, 1, tzinfo=UTC)


def job_due_at(job: JobState) -> datetime | None:
    """When the processor's timer must look at the job itself (not at one of its runs):
    its next cron tick, the end of a hold on its runs, or at once to drain a deleted
    job's queue."""
    if (job.deleted and job.queued_count) or job.sweep is not None:
        return _AT_ONCE + timedelta(microseconds=job.seq)
    due = [at for at in (job.next_tick_at, job.held_until) if at is not None]
    return min(due, default=None)


def dispatch_order(run: RunState) -> tuple[int, int, int]:
    """Sort key of queued runs: higher priority first, then the lower fairness round (the
    keys take turns), then first in first out."""
    return (-run.priority, run.round, run.position)


def lane_of(run: RunState) -> str:
    """The concurrency key a run counts under ("" for none)."""
    return run.concurrency_key or ""


def expired(run: RunState, now: datetime) -> bool:
    """Whether a run that never started is past its expiry (the job's run_ttl_secs)."""
    return run.expires_at is not None and run.attempt == 0 and now >= run.expires_at


def timer_due_at(run: RunState) -> datetime | None:
    """When the timer must look at a run: a delayed run's retry or scheduled start, a
    queued never-started run's expiry, a running attempt's report deadline; None for a
    run no timer waits for."""
    if run.status is RunStatus.DELAYED:
        return run.next_retry_at
    if run.status is RunStatus.QUEUED:
        return run.expires_at if run.attempt == 0 else None
    if run.status in (RunStatus.RUNNING, RunStatus.CANCELING):
        due = [at for at in (run.deadline_at, run.heartbeat_due_at) if at is not None]
        return min(due, default=None)
    return None


def in_attempt(run: RunState, attempt: int) -> bool:
    """Whether ``attempt`` is the run's attempt in progress (what a report or callback
    about it may change)."""
    return run.status in (RunStatus.RUNNING, RunStatus.CANCELING) and attempt == run.attempt


class Aggregate(msgspec.Struct, frozen=True, kw_only=True):
    """A job and the runs a decision needs: the unit ``decide`` and ``evolve`` work on.

    ``runs`` holds the runs the command names and the queued runs that may start next
    (the first ones in ``dispatch_order``); decisions only look at those.
    """

    job: JobState
    runs: dict[str, RunState] = msgspec.field(default_factory=dict)
    # The key records of those runs (and of a trigger's key); a key with no record has
    # nothing queued or running.
    keys: dict[str, KeyState] = msgspec.field(default_factory=dict)
    # The dedup record of a trigger's idempotency key, by key (loaded for that trigger).
    dedup: dict[str, DedupRecord] = msgspec.field(default_factory=dict)
    # The job's waiting runs next in a sweep (born after its cursor, in that order), and
    # whether more follow them.
    sweep_chunk: list[str] = msgspec.field(default_factory=list)
    sweep_more: bool = False
    # The start counters of the job's rate_limit_keys that the loaded runs count under,
    # by (limit name, metadata value); a pair with no counter has no recent starts.
    rates: dict[tuple[str, str], RateCounter] = msgspec.field(default_factory=dict)

    def key(self, name: str) -> KeyState:
        return self.keys.get(name) or KeyState(job_id=self.job.job_id, key=name)


def webhook_active(job: JobState) -> str | None:
    """The URL the job's webhooks go to now, or None."""
    url = job.spec.webhook_url if job.spec is not None else None
    return url if url is not None and url != job.webhook_disabled_url else None
