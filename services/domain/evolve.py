"""evolve(state, event) -> state: the only way state changes. Pure, total, no I/O."""

from datetime import datetime

from msgspec.structs import replace

from events.types import (
    Event,
    JobCreated,
    JobCronTicked,
    JobDeleted,
    JobDependentAdded,
    JobDependentRemoved,
    JobDisabled,
    JobDispatchHeld,
    JobEnabled,
    JobScheduleSet,
    JobSweepFinished,
    JobSweepProgressed,
    JobSweepStarted,
    JobUpdated,
    JobWebhookDisabled,
    ProjectOperationStarted,
    ProjectQuotasSet,
    ProjectRetentionSet,
    RunAccepted,
    RunCanceled,
    RunCancelRequested,
    RunChildSpawned,
    RunCompleted,
    RunCrashed,
    RunDispatched,
    RunExpired,
    RunFailed,
    RunHeartbeatRecorded,
    RunMessageLogged,
    RunProgressReported,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
    RunWebhookAttempted,
)
from services.domain.pacing import RateCounter, with_start
from services.domain.state import (
    Aggregate,
    ChildRef,
    CronSchedule,
    DedupRecord,
    JobState,
    KeyState,
    RunState,
    RunStatus,
    Sweep,
    lane_of,
)
from services.domain.version_policy import pin_of

# Which of the job's counters a run in each status counts in.
_COUNTER = {
    RunStatus.QUEUED: "queued_count",
    RunStatus.DELAYED: "delayed_count",
    RunStatus.RUNNING: "running_count",
    RunStatus.CANCELING: "running_count",
}


def _moved(job: JobState, before: RunStatus | None, after: RunStatus) -> JobState:
    """The job's counters once a run went from ``before`` to ``after``."""
    counts: dict[str, int] = {}
    if before is not None and (old := _COUNTER.get(before)):
        counts[old] = getattr(job, old) - 1
    if new := _COUNTER.get(after):
        counts[new] = counts.get(new, getattr(job, new)) + 1
    return replace(job, **counts) if counts else job


# Which of a key's counters a run in each status counts in.
_KEY_COUNTER = {
    RunStatus.QUEUED: "queued",
    RunStatus.RUNNING: "running",
    RunStatus.CANCELING: "running",
}


def _key_moved(key: KeyState, before: RunStatus | None, after: RunStatus) -> KeyState:
    """The key's counters once one of its runs went from ``before`` to ``after``."""
    counts: dict[str, int] = {}
    if before is not None and (old := _KEY_COUNTER.get(before)):
        counts[old] = getattr(key, old) - 1
    if new := _KEY_COUNTER.get(after):
        counts[new] = counts.get(new, getattr(key, new)) + 1
    return replace(key, **counts) if counts else key


def _enqueued(job: JobState, key: KeyState) -> tuple[int, KeyState]:
    """The fairness round of a run its key queues now, and the key after it: the key's
    next round, but never behind the job's served round (an idle key saves no credit)."""
    round_ = max(key.next_round, job.served_round)
    return round_, replace(key, next_round=round_ + 1)


def _with_run(state: Aggregate, job: JobState, before: RunState | None, run: RunState,
              key: KeyState | None = None) -> Aggregate:
    """The aggregate with ``run`` stored and the job's and its key's counters moved."""
    key = _key_moved(key or state.key(lane_of(run)),
                     None if before is None else before.status, run.status)
    old = None if before is None else before.status
    # A key with nothing queued or running has no record (the processor deletes it), so
    # its next run starts at the job's served round either way.
    keys = {name: k for name, k in state.keys.items() if name != key.key}
    if key.live():
        keys[key.key] = key
    return replace(state, job=_moved(job, old, run.status),
                   runs={**state.runs, run.run_id: run}, keys=keys)


def evolve(state: Aggregate, run_id: str | None, event: Event) -> Aggregate:
    """Apply one event; ``run_id`` is the run the event is about (from its envelope)."""
    job = replace(state.job, seq=state.job.seq + 1)
    if event.TYPE.startswith("run."):
        return _run_evolved(state, job, run_id, event)
    return _job_evolved(state, job, event)


def _job_evolved(state: Aggregate, job: JobState, event: Event) -> Aggregate:
    """A job's or project's event (the job already at the event's seq)."""
    if isinstance(event, JobCreated):
        enabled = event.spec.enabled if event.enabled is None else event.enabled
        return replace(state, job=replace(job, spec=event.spec, version=event.version,
                                          enabled=enabled))
    if isinstance(event, JobUpdated):
        floor = job.compat_floor
        if not event.backwards_compatible and "payload_schema" in event.changed_fields:
            floor = event.version
        disabled = job.webhook_disabled_url
        if {"webhook_url", "webhook_secret_sha256"} & set(event.changed_fields):
            disabled = None  # a new URL or secret: deliveries start again
        return replace(state, job=replace(job, spec=event.spec, version=event.version,
                                          updated_by=event.updated_by, compat_floor=floor,
                                          webhook_disabled_url=disabled))
    if isinstance(event, JobWebhookDisabled):
        return replace(state, job=replace(job, webhook_disabled_url=event.url))
    if isinstance(event, JobDeleted):
        return replace(state, job=replace(job, deleted=True, updated_by=event.by))
    if isinstance(event, JobEnabled | JobDisabled):
        return replace(state, job=replace(job, enabled=isinstance(event, JobEnabled),
                                          updated_by=event.by))
    if isinstance(event, JobScheduleSet):
        schedule = None if event.cron is None else CronSchedule(event.cron,
                                                                event.timezone or "UTC")
        return replace(state, job=replace(job, schedule_of=schedule,
                                          next_tick_at=event.next_tick_at))
    if isinstance(event, ProjectQuotasSet | ProjectOperationStarted | ProjectRetentionSet):
        # The API enforces quotas; an operation's parts are the jobs' own sweeps; the
        # projector applies retention.
        return replace(state, job=job)
    if isinstance(event, JobSweepStarted):
        sweep = Sweep(operation_id=event.operation_id, up_to=event.up_to,
                      job_version=event.job_version)
        return replace(state, job=replace(job, sweep=sweep))
    if isinstance(event, JobSweepProgressed):
        if job.sweep is None or job.sweep.operation_id != event.operation_id:
            return replace(state, job=job)
        sweep = replace(job.sweep, cursor=event.cursor, canceled=event.canceled)
        return replace(state, job=replace(job, sweep=sweep))
    if isinstance(event, JobSweepFinished):
        if job.sweep is not None and job.sweep.operation_id == event.operation_id:
            job = replace(job, sweep=None)
        return replace(state, job=job)
    if isinstance(event, JobDispatchHeld):
        return replace(state, job=replace(job, held_until=event.until,
                                          held_reason=event.reason))
    if isinstance(event, JobDependentAdded):
        dependents = {**job.dependents, event.downstream_job_id: event.condition}
        return replace(state, job=replace(job, dependents=dependents))
    if isinstance(event, JobDependentRemoved):
        dependents = {k: v for k, v in job.dependents.items() if k != event.downstream_job_id}
        return replace(state, job=replace(job, dependents=dependents))
    if isinstance(event, JobCronTicked):
        return replace(state, job=replace(job, next_tick_at=event.next_tick_at,
                                          last_tick_at=event.tick_at))
    raise AssertionError(f"unhandled event {event!r}")


def _run_evolved(state: Aggregate, job: JobState, run_id: str | None,
                 event: Event) -> Aggregate:
    """A run's event (the job already at the event's seq)."""
    assert run_id is not None, f"{type(event).__name__} needs a run id"
    if isinstance(event, RunTriggered):
        return _triggered(state, job, run_id, event)

    before = state.runs[run_id]
    key: KeyState | None = None
    match event:
        case RunDispatched(attempt=attempt, deadline_at=deadline, at=started):
            run = replace(before, status=RunStatus.RUNNING, attempt=attempt,
                          next_retry_at=None, deadline_at=deadline, accepted=False,
                          heartbeat_due_at=None)
            job = replace(job, served_round=max(job.served_round, before.round))
            spec = job.spec
            if started is not None and spec is not None and spec.rate_limit_window_secs:
                job = replace(job, rate=with_start(job.rate, spec.rate_limit_window_secs,
                                                   started))
            if started is not None and spec is not None and spec.rate_limit_keys:
                state = replace(state, rates=_counted(state, before, started))
        case RunCompleted():
            run = replace(before, status=RunStatus.COMPLETED, deadline_at=None,
                          heartbeat_due_at=None)
        case RunAccepted(deadline_at=deadline, heartbeat_due_at=due):
            run = replace(before, accepted=True, deadline_at=deadline, heartbeat_due_at=due)
        case RunHeartbeatRecorded(heartbeat_due_at=due):
            run = replace(before, heartbeat_due_at=due if before.accepted else None)
        case RunChildSpawned(child_job_id=child_job, child_run_id=child_run):
            run = replace(before, children=[*before.children, ChildRef(child_job, child_run)])
        case RunProgressReported() | RunMessageLogged() | RunWebhookAttempted():
            return replace(state, job=job)  # the read model keeps them; no decision does
        case RunCrashed():
            run = replace(before, status=RunStatus.CRASHED, deadline_at=None,
                          heartbeat_due_at=None)
        case RunRetryScheduled(next_retry_at=at):
            run = replace(before, status=RunStatus.DELAYED, next_retry_at=at, deadline_at=None,
                          heartbeat_due_at=None)
        case RunRequeued():
            round_, key = _enqueued(job, state.key(lane_of(before)))
            run = replace(before, status=RunStatus.QUEUED, next_retry_at=None,
                          position=job.seq, round=round_)
        case RunFailed(status=status):
            run = replace(before, status=RunStatus(status), deadline_at=None,
                          heartbeat_due_at=None)
        case RunCancelRequested(deadline_at=deadline):
            # Heartbeats no longer matter: the attempt ends at the cancel deadline anyway.
            run = replace(before, status=RunStatus.CANCELING, heartbeat_due_at=None,
                          deadline_at=deadline or before.deadline_at)
        case RunCanceled():
            run = replace(before, status=RunStatus.CANCELED, next_retry_at=None,
                          deadline_at=None, heartbeat_due_at=None)
        case RunExpired():
            run = replace(before, status=RunStatus.EXPIRED, next_retry_at=None)
        case _:
            raise AssertionError(f"unhandled event {event!r}")
    return _with_run(state, job, before, run, key)


def _triggered(state: Aggregate, job: JobState, run_id: str,
               event: RunTriggered) -> Aggregate:
    """A new run: queued in its key's next fairness round, or delayed until its
    scheduled time (it takes its round when it is requeued then)."""
    run = RunState(run_id=run_id, job_id=job.job_id, status=RunStatus.QUEUED,
                   priority=event.priority, position=job.seq, born=job.seq,
                   max_attempts=event.max_attempts, timeout_secs=event.timeout_secs,
                   payload=event.payload, metadata=event.metadata,
                   job_version=event.job_version,
                   pinned=None if job.spec is None else pin_of(job.spec),
                   concurrency_key=event.concurrency_key, expires_at=event.expires_at,
                   overrides=event.overrides, debug_mode=event.debug_mode,
                   lineage_depth=event.lineage_depth)
    if event.idempotency_key is not None and event.dedup_until is not None:
        record = DedupRecord(run_id=run_id, until=event.dedup_until)
        state = replace(state, dedup={**state.dedup, event.idempotency_key: record})
    if event.scheduled_at is not None:
        run = replace(run, status=RunStatus.DELAYED, next_retry_at=event.scheduled_at)
        return _with_run(state, job, None, run)
    round_, lane = _enqueued(job, state.key(event.concurrency_key or ""))
    return _with_run(state, job, None, replace(run, round=round_), lane)


def _counted(state: Aggregate, run: RunState, started: datetime) -> dict[tuple[str, str],
                                                                       RateCounter]:
    """The rate-key counters once ``run`` started: one more start under each limit its
    metadata names a value for."""
    assert state.job.spec is not None
    rates = dict(state.rates)
    for limit in state.job.spec.rate_limit_keys:
        value = run.metadata.get(limit.name)
        if value is not None:
            pair = (limit.name, value)
            rates[pair] = with_start(rates.get(pair), limit.window_secs, started)
    return rates
