"""Apply events to the read models, at most once per (job id, seq).

``apply_batch`` runs inside the caller's transaction and writes the consumed offsets in
that same transaction: a crash either keeps a whole batch (rows and offsets) or none of
it, so the projector never loses or doubles an event.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from events.codec import DecodedEvent, decode_event
from events.envelope import Envelope
from events.types import (
    JobCreated,
    RunCanceled,
    RunCancelRequested,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)
from projections.tables import job_positions, jobs, projector_offsets, run_events, runs

log = logging.getLogger(__name__)

Record = tuple[int, int, bytes]  # partition, offset, value
Apply = Callable[[AsyncConnection, Envelope, Any], Awaitable[None]]


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


async def _job_created(conn: AsyncConnection, env: Envelope, event: JobCreated) -> None:
    spec = event.spec
    await conn.execute(insert(jobs).values(
        id=env.job_id, project_id=env.project_id, slug=spec.slug, name=spec.name,
        spec=_plain(spec), version=event.version, enabled=spec.enabled,
        created_at=env.occurred_at, updated_at=env.occurred_at, last_seq=env.seq))


async def _run_triggered(conn: AsyncConnection, env: Envelope, event: RunTriggered) -> None:
    await conn.execute(insert(runs).values(
        id=env.run_id, job_id=env.job_id, project_id=env.project_id, status="queued",
        attempt=0, max_attempts=event.max_attempts, payload=event.payload, result=None,
        metadata=event.metadata, error=None, triggered_by=event.triggered_by,
        priority=event.priority, idempotency_key=event.idempotency_key,
        correlation_id=event.correlation_id, job_version=event.job_version,
        created_at=env.occurred_at, updated_at=env.occurred_at, last_seq=env.seq))


def _run_update(values: Callable[[Envelope, Any], dict[str, Any]]) -> Apply:
    async def apply(conn: AsyncConnection, env: Envelope, event: Any) -> None:
        await conn.execute(update(runs).where(runs.c.id == env.run_id).values(
            **values(env, event), updated_at=env.occurred_at, last_seq=env.seq))
    return apply


def _finished(status: str) -> Callable[[Envelope, Any], dict[str, Any]]:
    return lambda env, e: {"status": status, "finished_at": env.occurred_at}


APPLIERS: dict[type, Apply] = {
    JobCreated: _job_created,
    RunTriggered: _run_triggered,
    RunDispatched: _run_update(lambda env, e: {
        "status": "running", "attempt": e.attempt, "started_at": env.occurred_at,
        "next_retry_at": None}),
    RunCompleted: _run_update(lambda env, e: {
        **_finished("completed")(env, e), "result": e.result}),
    RunRetryScheduled: _run_update(lambda env, e: {
        "status": "delayed", "error": _plain(e.failure), "next_retry_at": e.next_retry_at}),
    RunRequeued: _run_update(lambda env, e: {"status": "queued", "next_retry_at": None}),
    RunFailed: _run_update(lambda env, e: {
        **_finished(e.status)(env, e), "error": _plain(e.failure)}),
    RunCancelRequested: _run_update(lambda env, e: {"status": "canceling"}),
    RunCanceled: _run_update(lambda env, e: {**_finished("canceled")(env, e),
                                             "next_retry_at": None}),
}


async def _position(conn: AsyncConnection, job_id: str) -> int | None:
    row = (await conn.execute(select(job_positions.c.last_seq)
                              .where(job_positions.c.job_id == job_id))).first()
    return None if row is None else int(row[0])


async def apply_batch(conn: AsyncConnection, topic: str, records: list[Record]) -> int:
    """Apply records in order; returns how many events were new."""
    positions: dict[str, int] = {}
    known: set[str] = set()  # jobs that already have a job_positions row
    ends: dict[int, int] = {}
    applied = 0
    for partition, offset, value in records:
        ends[partition] = offset + 1
        decoded = decode_event(value)
        if decoded is None:
            continue
        job_id = decoded.envelope.job_id
        if job_id not in positions:
            stored = await _position(conn, job_id)
            positions[job_id] = stored or 0
            if stored is not None:
                known.add(job_id)
        if decoded.envelope.seq <= positions[job_id]:
            continue  # a repeat written by a processor that crashed mid-command
        if decoded.envelope.seq != positions[job_id] + 1:
            log.warning("job %s: seq %d follows %d", job_id, decoded.envelope.seq,
                        positions[job_id])
        await _apply(conn, decoded)
        positions[job_id] = decoded.envelope.seq
        applied += 1
    for job_id, seq in positions.items():
        if job_id in known:
            await conn.execute(update(job_positions).where(job_positions.c.job_id == job_id)
                               .values(last_seq=seq))
        elif seq:
            await conn.execute(insert(job_positions).values(job_id=job_id, last_seq=seq))
    for partition, next_offset in ends.items():
        await _store_offset(conn, topic, partition, next_offset)
    return applied


async def skip_record(conn: AsyncConnection, topic: str, record: Record) -> None:
    """Pass over a record that cannot be applied (it is on the dead-letter topic): its
    offset is consumed and, if its envelope can be read, its job's position moves past
    it, so the job's later events still apply."""
    partition, offset, value = record
    try:
        envelope = msgspec.json.decode(value, type=_EnvelopeOnly)
    except (msgspec.DecodeError, UnicodeDecodeError):
        envelope = None
    if envelope is not None:
        stored = await _position(conn, envelope.job_id)
        if stored is None:
            await conn.execute(insert(job_positions).values(job_id=envelope.job_id,
                                                            last_seq=envelope.seq))
        elif envelope.seq > stored:
            await conn.execute(update(job_positions)
                               .where(job_positions.c.job_id == envelope.job_id)
                               .values(last_seq=envelope.seq))
    await _store_offset(conn, topic, partition, offset + 1)


class _EnvelopeOnly(msgspec.Struct):
    job_id: str
    seq: int


async def _apply(conn: AsyncConnection, decoded: DecodedEvent) -> None:
    env, event = decoded.envelope, decoded.event
    await conn.execute(insert(run_events).values(
        job_id=env.job_id, seq=env.seq, run_id=env.run_id, project_id=env.project_id,
        type=env.type, version=env.version, event_id=env.event_id,
        command_id=env.command_id, occurred_at=env.occurred_at, data=_plain(event)))
    await APPLIERS[type(event)](conn, env, event)


async def _store_offset(conn: AsyncConnection, topic: str, partition: int, offset: int) -> None:
    where = (projector_offsets.c.topic == topic) & (projector_offsets.c.partition == partition)
    result = await conn.execute(update(projector_offsets).where(where)
                                .values(next_offset=offset))
    if result.rowcount == 0:
        await conn.execute(insert(projector_offsets).values(
            topic=topic, partition=partition, next_offset=offset))


async def load_offsets(engine: AsyncEngine, topic: str) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(projector_offsets.c.partition,
                                         projector_offsets.c.next_offset)
                                  .where(projector_offsets.c.topic == topic))
        return {int(p): int(o) for p, o in rows}


