"""decide(state, command, now) -> events | rejection: the checks every command shares,
then the operation's own module (``services.domain.operations``)."""

from datetime import datetime

from events.types import ProjectQuotasSet, ProjectRetentionSet
from services.domain.commands import (
    AddDependent,
    CancelRun,
    CancelWaitingRuns,
    Command,
    CreateJob,
    DeleteJob,
    DisableJob,
    DisableWebhook,
    DispatchRun,
    EnableJob,
    FireCronTick,
    FireDueTimers,
    LogRunMessage,
    RecordHeartbeat,
    RecordWebhookDelivery,
    RemoveDependent,
    ReportAttemptAccepted,
    ReportAttemptFailed,
    ReportAttemptSucceeded,
    ReportProgress,
    SetProjectQuotas,
    SetProjectRetention,
    SpawnChild,
    StartOperation,
    SweepWaitingRuns,
    TriggerRun,
    TriggerRuns,
    UpdateJob,
    WakeJob,
    project_stream,
)
from services.domain.operations.callbacks import decide_callback
from services.domain.operations.cancel import decide_cancel
from services.domain.operations.children import decide_spawn
from services.domain.operations.create_job import decide_create_job
from services.domain.operations.cron_tick import decide_cron_tick
from services.domain.operations.delete_job import decide_delete
from services.domain.operations.dependents import decide_dependents
from services.domain.operations.dispatch import decide_dispatch
from services.domain.operations.report import decide_report
from services.domain.operations.sweep import decide_start, decide_sweep
from services.domain.operations.timers import decide_fire_timers
from services.domain.operations.toggle import decide_toggle
from services.domain.operations.trigger import decide_trigger
from services.domain.operations.update_job import decide_update
from services.domain.operations.webhooks import decide_delivery, decide_disable
from services.domain.results import Duplicate, Rejection, RunEvent
from services.domain.retention import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS, valid_days
from services.domain.state import Aggregate

# What a deleted job still takes: what finishes or drains the runs it had, and a caller's
# cancel of one of them (they stay readable, and a running one may be stopped).
AFTER_DELETE = (FireDueTimers, ReportAttemptSucceeded, ReportAttemptFailed,
                ReportAttemptAccepted, RecordHeartbeat, ReportProgress, LogRunMessage,
                SpawnChild, DispatchRun, CancelWaitingRuns, CancelRun, WakeJob,
                RemoveDependent, RecordWebhookDelivery, DisableWebhook, SweepWaitingRuns)


def decide(state: Aggregate, command: Command,
           now: datetime) -> list[RunEvent] | Rejection | Duplicate:
    job = state.job
    if isinstance(command, CreateJob):
        return decide_create_job(state, command)
    if isinstance(command, SetProjectQuotas):
        if command.job_id != project_stream(command.project_id):
            return Rejection("invalid", "quotas are set on the project's own stream")
        return [(None, ProjectQuotasSet(max_queued_runs=command.max_queued_runs,
                                        max_runs_per_day=command.max_runs_per_day,
                                        by=command.actor))]
    if isinstance(command, SetProjectRetention):
        if command.job_id != project_stream(command.project_id):
            return Rejection("invalid", "retention is set on the project's own stream")
        if not valid_days(command.run_retention_days):
            return Rejection("invalid", f"run_retention_days must be {MIN_RETENTION_DAYS} "
                                        f"to {MAX_RETENTION_DAYS}")
        return [(None, ProjectRetentionSet(run_retention_days=command.run_retention_days,
                                           by=command.actor))]
    if isinstance(command, StartOperation):
        return decide_start(command)
    # Another project's job answers as a missing one: ids never leak across projects.
    if job.spec is None or job.project_id != command.project_id:
        return Rejection("not_found", f"job {command.job_id} not found")
    if job.deleted and not isinstance(command, AFTER_DELETE):
        return Rejection("not_found", f"job {command.job_id} not found (deleted)")
    match command:
        case TriggerRun():
            return decide_trigger(state, command)
        case TriggerRuns():
            # Each item is a TriggerRun of its own (handle: operations.bulk_trigger).
            return Rejection("invalid", "a bulk trigger is decided item by item")
        case FireDueTimers():
            return decide_fire_timers(state, command, now)
        case EnableJob() | DisableJob():
            return decide_toggle(state, command)
        case DeleteJob():
            return decide_delete(command)
        case UpdateJob():
            return decide_update(state, command)
        case CancelWaitingRuns() | WakeJob():
            return []  # handle() drains or starts the queued runs it loaded
        case FireCronTick():
            return decide_cron_tick(state, command, now)
        case AddDependent() | RemoveDependent():
            return decide_dependents(state, command)
        case DisableWebhook():
            return decide_disable(state, command)
        case SweepWaitingRuns():
            return decide_sweep(state, command)
    run = state.runs.get(command.run_id)
    if run is None:
        return Rejection("not_found", f"run {command.run_id} not found")
    match command:
        case DispatchRun():
            return decide_dispatch(state, run, now)
        case CancelRun():
            return decide_cancel(run, command, now)
        case ReportAttemptSucceeded() | ReportAttemptFailed() | ReportAttemptAccepted():
            return decide_report(state, run, command, now)
        case RecordHeartbeat() | ReportProgress() | LogRunMessage():
            return decide_callback(state, run, command, now)
        case SpawnChild():
            return decide_spawn(run, command)
        case RecordWebhookDelivery():
            return decide_delivery(run, command)
    raise AssertionError(f"unhandled command {command!r}")
