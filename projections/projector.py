"""Apply events to the read models, at most once per (job id, seq).

``apply_batch`` runs inside the caller's transaction and writes the consumed offsets in
that same transaction: a crash either keeps a whole batch (rows and offsets) or none of
it, so the projector never loses or doubles an event.

A batch is written set-wise, not event by event: the positions of all its jobs are read
in one query, its events are folded in memory per run (a run triggered, dispatched and
completed within one batch becomes one insert of its final row; a run that already
exists gets one update with every column the batch changed), and each kind of write is
one executemany, grouped by statement shape. The whole batch is one call into the
database layer (``AsyncConnection.run_sync``): SQLAlchemy Core only, so the same code runs
on SQLite and PostgreSQL. The tables end exactly as applying the events one by one would
leave them; a batch that one by one would fail (a run id used twice, a slug taken) fails
here too, and the projector's poison isolation then applies it one record at a time.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    bindparam,
    case,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from events.codec import DecodedEvent, decode_event
from events.envelope import Envelope
from events.types import (
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
from events.versions import version_id_for
from projections import event_order
from projections.counters import sum_into_parents
from projections.gates import write_gates
from projections.job_search import terms_of
from projections.retention import correct_after_settings, purged_among, write_retention
from projections.rollups import Rollups
from projections.rows import aware
from projections.tables import (
    dead_letters,
    job_dependencies,
    job_positions,
    job_tags,
    job_terms,
    job_versions,
    jobs,
    label_digest,
    operation_parts,
    operations,
    project_quotas,
    projector_offsets,
    run_events,
    run_labels,
    runs,
)

log = logging.getLogger(__name__)

Record = tuple[int, int, bytes]  # partition, offset, value
Changes = Callable[[Envelope, Any], dict[str, Any]]

# Bind parameters of an IN list per query: far below SQLite's and PostgreSQL's limits.
IN_CHUNK = 500


@dataclass(slots=True)
class Applied:
    """What a batch did: how many events were new, and the last applied seq of each job
    whose position moved (what the projector announces on the ``projected`` topic)."""

    events: int = 0
    positions: dict[str, int] = field(default_factory=dict)

    def merge(self, other: "Applied") -> None:
        self.events += other.events
        for job_id, seq in other.positions.items():
            if seq > self.positions.get(job_id, 0):
                self.positions[job_id] = seq


class RunTriggeredTwice(Exception):
    """Two run.triggered events for one run id in a batch: applied one by one, the second
    insert would fail on the primary key, so the batch fails as it would have."""


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _finished(status: str) -> Changes:
    return lambda env, e: {"status": status, "finished_at": env.occurred_at}


def _traced(changes: Changes) -> Changes:
    """An attempt's end (or acceptance) that the executor measured: its trace too."""
    def with_trace(env: Envelope, e: Any) -> dict[str, Any]:
        found = changes(env, e)
        if e.trace is not None:
            found["execution_trace"] = _plain(e.trace)
        return found
    return with_trace


def _crash(env: Envelope, e: RunCrashed) -> dict[str, Any]:
    return {**_finished("crashed")(env, e), "outcome_code": "ZOMBIE_PROCESS",
            "error": {"kind": "heartbeat_lost", "message": f"{e.reason} by "
                      f"{e.heartbeat_due_at.isoformat()}", "status_code": None,
                      "retryable": False, "retry_after_secs": None}}


# A run that ends in one of these has no attempt left: it joins the dead-letter list.
DEAD_STATUSES = frozenset({"failed", "timed_out", "crashed"})


# What each run event changes in its run's row (besides updated_at and last_seq).
RUN_CHANGES: dict[type, Changes] = {
    RunDispatched: lambda env, e: {
        "status": "running", "attempt": e.attempt, "started_at": env.occurred_at,
        "next_retry_at": None, "heartbeat_at": None},
    RunCompleted: _traced(lambda env, e: {**_finished("completed")(env, e),
                                          "result": e.result}),
    RunAccepted: _traced(lambda env, e: {}),
    RunHeartbeatRecorded: lambda env, e: {"heartbeat_at": env.occurred_at},
    RunProgressReported: lambda env, e: {"counters": dict(e.counters)},
    RunMessageLogged: lambda env, e: {},  # read from the run's event history
    RunChildSpawned: lambda env, e: {},  # the child's own row says whose child it is
    RunWebhookAttempted: lambda env, e: {},  # read from the run's event history
    RunCrashed: _crash,
    RunRetryScheduled: _traced(lambda env, e: {
        "status": "delayed", "error": _plain(e.failure), "next_retry_at": e.next_retry_at}),
    RunRequeued: lambda env, e: {"status": "queued", "next_retry_at": None},
    RunFailed: _traced(lambda env, e: {**_finished(e.status)(env, e),
                                       "error": _plain(e.failure)}),
    RunCancelRequested: lambda env, e: {"status": "canceling"},
    RunCanceled: lambda env, e: {**_finished("canceled")(env, e), "next_retry_at": None,
                                 "outcome_code": e.code or ("JOB_SYSTEM_CANCELED"
                                                            if e.by_system
                                                            else "JOB_USER_CANCELED")},
    RunExpired: lambda env, e: {**_finished("expired")(env, e), "next_retry_at": None},
}


def _job_row(env: Envelope, event: JobCreated) -> dict[str, Any]:
    spec = event.spec
    return {"id": env.job_id, "project_id": env.project_id, "slug": spec.slug,
            "name": spec.name, "spec": _plain(spec), "version": event.version,
            "enabled": spec.enabled if event.enabled is None else event.enabled,
            "created_at": env.occurred_at, "updated_at": env.occurred_at,
            "last_seq": env.seq, "group_id": spec.group_id,
            "environment_id": spec.environment_id, "version_id": event.version_id,
            "updated_by": spec.created_by, "deleted_at": None, "next_tick_at": None,
            "held_until": None, "held_reason": None, "webhook_disabled_at": None}


def _edited(changes: Changes) -> Changes:
    """A change of the definition or its state by a caller: it also moves updated_at and
    last_seq (a schedule moving on by itself does not)."""
    return lambda env, e: {**changes(env, e), "updated_at": env.occurred_at,
                           "last_seq": env.seq}


# A job update that changes one of these starts webhook deliveries again.
_WEBHOOK_FIELDS = frozenset({"webhook_url", "webhook_secret_sha256"})


# What each later job event changes in its job's row.
JOB_CHANGES: dict[type, Changes] = {
    JobScheduleSet: lambda env, e: {"next_tick_at": e.next_tick_at},
    JobCronTicked: lambda env, e: {"next_tick_at": e.next_tick_at},
    JobDispatchHeld: lambda env, e: {"held_until": e.until, "held_reason": e.reason},
    JobEnabled: _edited(lambda env, e: {"enabled": True, "updated_by": e.by}),
    JobDisabled: _edited(lambda env, e: {"enabled": False, "updated_by": e.by}),
    JobDeleted: _edited(lambda env, e: {"deleted_at": env.occurred_at, "updated_by": e.by}),
    JobUpdated: _edited(lambda env, e: {
        "spec": _plain(e.spec), "name": e.spec.name, "version": e.version,
        "version_id": e.version_id, "group_id": e.spec.group_id,
        "environment_id": e.spec.environment_id, "updated_by": e.updated_by,
        **({"webhook_disabled_at": None} if _WEBHOOK_FIELDS & set(e.changed_fields)
           else {})}),
    JobWebhookDisabled: lambda env, e: {"webhook_disabled_at": env.occurred_at},
}


def _version_row(env: Envelope, event: JobCreated | JobUpdated) -> dict[str, Any]:
    row = {"version_id": event.version_id or version_id_for(env.job_id, event.version),
           "job_id": env.job_id, "project_id": env.project_id, "version": event.version,
           "spec": _plain(event.spec), "changed_fields": [], "backwards_compatible": True,
           "created_by": event.spec.created_by, "created_at": env.occurred_at}
    if isinstance(event, JobUpdated):
        row.update(changed_fields=event.changed_fields, created_by=event.updated_by,
                   backwards_compatible=event.backwards_compatible)
    return row


def _run_row(env: Envelope, event: RunTriggered) -> dict[str, Any]:
    return {"id": env.run_id, "job_id": env.job_id, "project_id": env.project_id,
            "attempt": 0, "max_attempts": event.max_attempts,
            "payload": event.payload, "result": None, "metadata": event.metadata,
            "error": None, "triggered_by": event.triggered_by, "priority": event.priority,
            "idempotency_key": event.idempotency_key,
            "correlation_id": event.correlation_id, "job_version": event.job_version,
            "created_at": env.occurred_at, "started_at": None, "finished_at": None,
            "next_retry_at": None, "updated_at": env.occurred_at, "last_seq": env.seq,
            "concurrency_key": event.concurrency_key,
            "status": "queued" if event.scheduled_at is None else "delayed",
            "scheduled_at": event.scheduled_at, "expires_at": event.expires_at,
            "tags": event.tags, "debug_mode": event.debug_mode,
            "created_by": event.created_by, "batch_id": event.batch_id,
            "overrides": None if event.overrides is None else _plain(event.overrides),
            "execution_trace": None, "heartbeat_at": None, "counters": None,
            "outcome_code": None, "continuation_of": event.continuation_of,
            "parent_run_id": event.parent_run_id, "lineage_depth": event.lineage_depth,
            "run_type": event.run_type, "child_counters": None, "purge_at": None}


def _event_row(env: Envelope, event: Any) -> dict[str, Any]:
    return {"job_id": env.job_id, "seq": env.seq, "run_id": env.run_id,
            "project_id": env.project_id, "type": env.type, "version": env.version,
            "event_id": env.event_id, "command_id": env.command_id,
            "occurred_at": env.occurred_at, "data": _plain(event)}


class _Fold:
    """A batch's writes, folded in memory: each touched run is written once."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.versions: list[dict[str, Any]] = []
        self.tags: list[tuple[str, dict[str, str]]] = []  # each version's, in order
        self.terms: list[tuple[str, str, list[str]]] = []  # (job, project, words), in order
        self.events: list[dict[str, Any]] = []
        self.new_runs: dict[str | None, dict[str, Any]] = {}  # full rows to insert
        self.changed_runs: dict[str, dict[str, Any]] = {}  # columns to update
        self.created_jobs: dict[str, dict[str, Any]] = {}  # the rows of self.jobs by id
        self.changed_jobs: dict[str, dict[str, Any]] = {}  # columns to update
        self.quotas: dict[str, dict[str, Any]] = {}  # the last quotas set, by project
        self.dead: list[dict[str, Any]] = []  # runs that entered the dead-letter list
        self.progressed: set[str] = set()  # runs whose counters changed
        self.operations: list[dict[str, Any]] = []
        self.parts: list[dict[str, Any]] = []
        # Dependency edges added (row) or removed (None), by (upstream, downstream).
        self.edges: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.replays: dict[str, str] = {}  # dead-lettered run id -> the run replaying it
        self.retention: list[dict[str, Any]] = []  # project_retention rows to insert
        self.ended: dict[str, str] = {}  # run id -> project id, of runs that ended
        self.rollups = Rollups()  # what GET /v1/metrics counts, seen as the runs change

    def add(self, decoded: DecodedEvent) -> None:
        env, event = decoded.envelope, decoded.event
        self.events.append(_event_row(env, event))
        if isinstance(event, JobCreated | JobUpdated):
            self.versions.append(_version_row(env, event))
            self.tags.append((env.job_id, event.spec.tags))
            self.terms.append((env.job_id, env.project_id,
                               terms_of(event.spec.name, event.spec.slug)))
        if isinstance(event, ProjectOperationStarted):
            self.operations.append({
                "id": event.operation_id, "project_id": env.project_id, "kind": event.kind,
                "job_ids": event.job_ids, "jobs_total": len(event.job_ids),
                "job_version": event.job_version, "created_by": event.by,
                "created_at": env.occurred_at})
        elif isinstance(event, JobSweepFinished):
            self.parts.append({"operation_id": event.operation_id, "job_id": env.job_id,
                               "canceled": event.canceled, "superseded": event.superseded,
                               "finished_at": env.occurred_at})
        elif isinstance(event, JobSweepStarted | JobSweepProgressed):
            pass  # the job's event history keeps them; the parts say the outcome
        elif isinstance(event, ProjectQuotasSet):
            self.quotas[env.project_id] = {
                "project_id": env.project_id, "max_queued_runs": event.max_queued_runs,
                "max_runs_per_day": event.max_runs_per_day, "updated_at": env.occurred_at}
        elif isinstance(event, ProjectRetentionSet):
            self.retention.append({
                "project_id": env.project_id, "seq": env.seq, "since": env.occurred_at,
                "run_retention_days": event.run_retention_days})
        elif isinstance(event, JobDependentAdded | JobDependentRemoved):
            edge = (env.job_id, event.downstream_job_id)
            self.edges[edge] = None if isinstance(event, JobDependentRemoved) else {
                "upstream_job_id": env.job_id, "downstream_job_id": event.downstream_job_id,
                "project_id": env.project_id, "condition": event.condition,
                "created_at": env.occurred_at}
        elif isinstance(event, JobCreated):
            self.jobs.append(row := _job_row(env, event))
            self.created_jobs[env.job_id] = row
        elif type(event) in JOB_CHANGES:
            self._change_job(env, JOB_CHANGES[type(event)](env, event))
        elif isinstance(event, RunTriggered):
            if env.run_id in self.new_runs:
                raise RunTriggeredTwice(f"run {env.run_id} triggered twice in one batch")
            # Changes seen before the trigger updated an older row (whose insert now
            # fails) or nothing at all: either way they leave no trace.
            if env.run_id is not None:
                self.changed_runs.pop(env.run_id, None)
            self.new_runs[env.run_id] = _run_row(env, event)
            self.rollups.observe(env.project_id, env.job_id, env.run_id,
                                 self.new_runs[env.run_id], made=True)
            if event.continuation_of is not None and env.run_id is not None:
                self.replays[event.continuation_of] = env.run_id
        else:
            changes = RUN_CHANGES[type(event)](env, event)
            if (new := self.new_runs.get(env.run_id)) is not None:
                _not_before_created(changes, new["created_at"])
            if isinstance(event, RunProgressReported) and env.run_id is not None:
                self.progressed.add(env.run_id)
            if changes.get("status") in DEAD_STATUSES and env.run_id is not None:
                self.dead.append({"run_id": env.run_id, "project_id": env.project_id,
                                  "job_id": env.job_id, "status": changes["status"],
                                  "finished_at": env.occurred_at, "replayed_by": None})
            if "finished_at" in changes and env.run_id is not None:
                self.ended[env.run_id] = env.project_id
            self.rollups.observe(env.project_id, env.job_id, env.run_id, changes)
            changes["updated_at"], changes["last_seq"] = env.occurred_at, env.seq
            if env.run_id in self.new_runs:
                self.new_runs[env.run_id].update(changes)
            elif env.run_id is not None:  # an update of run id NULL matches no row
                self.changed_runs.setdefault(env.run_id, {}).update(changes)

    def _change_job(self, env: Envelope, changes: dict[str, Any]) -> None:
        # A job created in this batch is inserted with the change; an older one updated.
        if (row := self.created_jobs.get(env.job_id)) is not None:
            row.update(changes)
        else:
            self.changed_jobs.setdefault(env.job_id, {}).update(changes)

    def write(self, conn: Connection) -> None:
        if self.jobs:
            conn.execute(insert(jobs), self.jobs)
        if self.versions:
            conn.execute(insert(job_versions), self.versions)
        for job_id, tags in self.tags:
            conn.execute(delete(job_tags).where(job_tags.c.job_id == job_id))
            if tags:
                conn.execute(insert(job_tags), [{"job_id": job_id, "key": k, "value": v}
                                                for k, v in tags.items()])
        for job_id, project_id, terms in self.terms:
            conn.execute(delete(job_terms).where(job_terms.c.job_id == job_id))
            if terms:
                conn.execute(insert(job_terms), [
                    {"job_id": job_id, "project_id": project_id, "term": t} for t in terms])
        _update_by_id(conn, jobs, self.changed_jobs)
        # Before the runs change: the gates compare each run's stored status with its
        # status after the batch.
        write_gates(conn, self.new_runs.values(), self.changed_runs)
        write_retention(conn, self.retention, {
            run_id: (project, self.new_runs[run_id] if run_id in self.new_runs
                     else self.changed_runs[run_id])
            for run_id, project in self.ended.items()
            if run_id in self.new_runs or run_id in self.changed_runs})
        self.rollups.write(conn)
        if self.new_runs:
            conn.execute(insert(runs), list(self.new_runs.values()))
            if labels := _labels(self.new_runs.values()):
                conn.execute(insert(run_labels), labels)
        _update_by_id(conn, runs, self.changed_runs, NOT_BEFORE_CREATED)
        correct_after_settings(conn, self.retention)
        if self.events:
            event_order.assign_positions(conn, self.events)
            conn.execute(insert(run_events), self.events)
        if self.dead:
            conn.execute(insert(dead_letters), self.dead)
        if self.operations:
            conn.execute(insert(operations), self.operations)
        if self.parts:
            conn.execute(insert(operation_parts), self.parts)
        for (upstream, downstream), edge in self.edges.items():
            conn.execute(delete(job_dependencies).where(
                (job_dependencies.c.upstream_job_id == upstream)
                & (job_dependencies.c.downstream_job_id == downstream)))
            if edge is not None:
                conn.execute(insert(job_dependencies), [edge])
        if self.progressed or self.new_runs:
            sum_into_parents(conn, self.progressed,
                             (run_id for run_id in self.new_runs if run_id is not None))
        for dead_id, replay_id in self.replays.items():
            conn.execute(update(dead_letters).where(dead_letters.c.run_id == dead_id)
                         .values(replayed_by=replay_id))
        for project_id, row in self.quotas.items():
            conn.execute(delete(project_quotas).where(project_quotas.c.project_id == project_id))
            conn.execute(insert(project_quotas), [row])


def _labels(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run_labels rows of new runs: a row per tag and per metadata entry."""
    return [{"project_id": row["project_id"], "kind": kind, "key": key,
             "value_digest": label_digest(value), "value": value,
             "created_at": row["created_at"], "run_id": row["id"]}
            for row in rows
            for kind, entries in (("tag", row["tags"]), ("meta", row["metadata"]))
            for key, value in (entries or {}).items()]


# A run's times as the read models keep them never come before its creation: each is
# stamped by the clock of the service that issued the command (the API for a trigger,
# the executor for a dispatch), and a clock behind another's would otherwise show a run
# starting before it was made (a negative wait) and let the run list's implied bounds
# (projections.run_list) miss it. The events keep the times as stamped.
_TIMES = ("started_at", "finished_at")


def _not_before_created(changes: dict[str, Any], created_at: datetime) -> None:
    for column in _TIMES:
        if (at := changes.get(column)) is not None and at < created_at:
            changes[column] = created_at


def _later_of_created(column: str) -> ColumnElement[Any]:
    value = bindparam(column, type_=runs.c[column].type)
    return case((runs.c.created_at > value, runs.c.created_at), else_=value)


ColumnWriter = Callable[[str], ColumnElement[Any]]
NOT_BEFORE_CREATED: dict[str, ColumnWriter] = {column: _later_of_created for column in _TIMES}


def _update_by_id(conn: Connection, table: Table, changed: dict[str, dict[str, Any]],
                  written: dict[str, ColumnWriter] | None = None) -> None:
    """One executemany per shape of change (the set of columns it writes). ``written``
    gives the expression that writes a column's new value, where it is not the value."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, changes in changed.items():
        shape = tuple(sorted(changes))
        shapes.setdefault(shape, []).append({**changes, "b_id": row_id})
    special = written or {}
    for shape, rows in shapes.items():
        stmt = (update(table).where(table.c.id == bindparam("b_id"))
                .values({column: special[column](column) if column in special
                         else bindparam(column) for column in shape}))
        conn.execute(stmt, rows)


def _stored_positions(conn: Connection, job_ids: Iterable[str]) -> dict[str, int]:
    wanted = sorted(job_ids)
    found: dict[str, int] = {}
    for i in range(0, len(wanted), IN_CHUNK):
        rows = conn.execute(select(job_positions.c.job_id, job_positions.c.last_seq)
                            .where(job_positions.c.job_id.in_(wanted[i:i + IN_CHUNK])))
        found.update((str(job_id), int(seq)) for job_id, seq in rows)
    return found


def _write_positions(conn: Connection, moved: dict[str, int], known: Iterable[str]) -> None:
    known = set(known)
    old = [{"b_job_id": j, "last_seq": s} for j, s in moved.items() if j in known]
    new = [{"job_id": j, "last_seq": s} for j, s in moved.items() if j not in known]
    if old:
        conn.execute(update(job_positions)
                     .where(job_positions.c.job_id == bindparam("b_job_id"))
                     .values(last_seq=bindparam("last_seq")), old)
    if new:
        conn.execute(insert(job_positions), new)


def _store_offset(conn: Connection, topic: str, partition: int, offset: int,
                  event_at: datetime | None = None) -> None:
    where = (projector_offsets.c.topic == topic) & (projector_offsets.c.partition == partition)
    values: dict[str, Any] = {"next_offset": offset}
    if event_at is not None:
        values["event_at"] = event_at
    result = conn.execute(update(projector_offsets).where(where).values(**values))
    if result.rowcount == 0:
        conn.execute(insert(projector_offsets).values(topic=topic, partition=partition,
                                                      **values))


def apply_batch_sync(conn: Connection, topic: str, records: list[Record]) -> Applied:
    """Apply records in order within ``conn``'s transaction (see the module's doc)."""
    ends: dict[int, int] = {}
    latest: dict[int, datetime] = {}  # partition -> when its last event happened
    decoded: list[DecodedEvent] = []
    for partition, offset, value in records:
        ends[partition] = offset + 1
        event = decode_event(value)
        if event is not None:
            decoded.append(event)
            latest[partition] = event.envelope.occurred_at
    stored = _stored_positions(conn, {d.envelope.job_id for d in decoded})
    positions = dict(stored)
    # Runs the retention sweep took: a late event of one is dropped (it would make a
    # part of a row, or an orphan history entry), though its job's position moves.
    purged = purged_among(conn, {d.envelope.run_id for d in decoded
                                 if d.envelope.run_id is not None})
    fold, applied = _Fold(), Applied()
    for event in decoded:
        env = event.envelope
        last = positions.get(env.job_id, 0)
        if env.seq <= last:
            continue  # a repeat written by a processor that crashed mid-command
        if env.seq != last + 1:
            log.warning("job %s: seq %d follows %d", env.job_id, env.seq, last)
        if env.run_id not in purged:
            fold.add(event)
        positions[env.job_id] = applied.positions[env.job_id] = env.seq
        applied.events += 1
    fold.write(conn)
    _write_positions(conn, applied.positions, stored)
    for partition, next_offset in ends.items():
        _store_offset(conn, topic, partition, next_offset, latest.get(partition))
    return applied


async def apply_batch(conn: AsyncConnection, topic: str, records: list[Record]) -> Applied:
    """Apply records in order, in one call into the database layer."""
    return await conn.run_sync(apply_batch_sync, topic, records)


class _EnvelopeOnly(msgspec.Struct):
    job_id: str
    seq: int


def skip_record_sync(conn: Connection, topic: str, record: Record) -> Applied:
    partition, offset, value = record
    try:
        envelope = msgspec.json.decode(value, type=_EnvelopeOnly)
    except (msgspec.DecodeError, UnicodeDecodeError):
        envelope = None
    skipped = Applied()
    if envelope is not None:
        stored = _stored_positions(conn, [envelope.job_id])
        if envelope.seq > stored.get(envelope.job_id, 0):
            skipped.positions[envelope.job_id] = envelope.seq
            _write_positions(conn, skipped.positions, stored)
    _store_offset(conn, topic, partition, offset + 1)
    return skipped


async def skip_record(conn: AsyncConnection, topic: str, record: Record) -> Applied:
    """Pass over a record that cannot be applied (it is on the dead-letter topic): its
    offset is consumed and, if its envelope can be read, its job's position moves past
    it, so the job's later events still apply. Returns the position it moved, if any."""
    return await conn.run_sync(skip_record_sync, topic, record)


async def load_event_times(engine: AsyncEngine, topic: str) -> dict[int, datetime]:
    """When the last event applied from each partition happened."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(projector_offsets.c.partition,
                                         projector_offsets.c.event_at)
                                  .where(projector_offsets.c.topic == topic))
        return {int(p): aware(at) for p, at in rows if at is not None}


async def seconds_behind(engine: AsyncEngine, topic: str, lagging: Iterable[int],
                         now: datetime) -> float | None:
    """How long before ``now`` the last event applied from the oldest of the ``lagging``
    partitions (those with events waiting) happened: 0 when none lag, None when one has
    no applied event yet. What /readyz and the projector's log report."""
    waiting = set(lagging)
    if not waiting:
        return 0.0
    times = await load_event_times(engine, topic)
    if not waiting <= times.keys():
        return None
    oldest = min(times[partition] for partition in waiting)
    return round(max(0.0, (now - oldest).total_seconds()), 3)


async def load_offsets(engine: AsyncEngine, topic: str) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(projector_offsets.c.partition,
                                         projector_offsets.c.next_offset)
                                  .where(projector_offsets.c.topic == topic))
        return {int(p): int(o) for p, o in rows}
