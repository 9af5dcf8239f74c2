"""The projector's apply layer on SQLite, without Kafka."""

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from events import Envelope, encode_event
from events.types import (
    AttemptFailure,
    Event,
    JobCreated,
    RunCompleted,
    RunDispatched,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)
from projections.db import create_schema, make_engine
from projections.projector import apply_batch, load_offsets
from projections.queries import get_job, get_run, job_positions_of, list_run_events
from projections.tables import metadata
from tests.unit.domain_support import at, spec

TOPIC = "t.events"


def record(seq: int, run_id: str | None, event: Event, offset: int | None = None,
           job_id: str = "j", project: str = "p") -> tuple[int, int, bytes]:
    env = Envelope(event_id=f"e{seq}", type=event.TYPE, version=event.VERSION,
                   project_id=project, job_id=job_id, seq=seq, occurred_at=at(seq),
                   command_id=f"c{seq}", run_id=run_id)
    return (0, seq - 1 if offset is None else offset, encode_event(env, event))


FAILURE = AttemptFailure(kind="http_status", message="503", status_code=503)
RETRY = RunRetryScheduled(attempt=1, failure=FAILURE, next_retry_at=at(60))
HISTORY = [
    record(1, None, JobCreated(spec=spec(slug="hello"))),
    record(2, "r1", RunTriggered(payload={"n": 1}, max_attempts=3)),
    record(3, "r1", RunDispatched(attempt=1, endpoint_url="http://x")),
    record(4, "r1", RETRY),
    record(5, "r1", RunRequeued(next_attempt=2)),
    record(6, "r1", RunDispatched(attempt=2, endpoint_url="http://x")),
    record(7, "r1", RunCompleted(attempt=2, result={"ok": True})),
]


async def engine_at(path: Path) -> AsyncEngine:
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    await create_schema(engine)
    return engine


async def apply(engine: AsyncEngine, records: list[tuple[int, int, bytes]]) -> int:
    async with engine.begin() as conn:
        return await apply_batch(conn, TOPIC, records)


async def dump(engine: AsyncEngine) -> dict[str, list[tuple[object, ...]]]:
    async with engine.connect() as conn:
        return {name: sorted(map(tuple, await conn.execute(select(table))), key=repr)
                for name, table in metadata.tables.items()}


async def test_history_projects_into_job_run_and_events(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "a.db")
    assert await apply(engine, HISTORY) == 7
    job = await get_job(engine, "p", "j")
    assert job is not None and job.slug == "hello" and job.version == 1
    run = await get_run(engine, "p", "r1")
    assert run is not None
    assert (run.status, run.attempt, run.result) == ("completed", 2, {"ok": True})
    assert run.error == {"kind": "http_status", "message": "503", "status_code": 503,
                         "retryable": True}
    assert run.finished_at == at(7) and run.started_at == at(6) and run.created_at == at(2)
    events = await list_run_events(engine, "p", "r1")
    assert [e.seq for e in events] == [2, 3, 4, 5, 6, 7]
    assert await job_positions_of(engine, ["j"]) == {"j": 7}
    assert await load_offsets(engine, TOPIC) == {0: 7}


async def test_repeats_are_applied_at_most_once(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "a.db")
    await apply(engine, HISTORY[:4])
    before = await dump(engine)
    # A crashed processor wrote seqs 3-4 again, then carried on.
    repeated = [record(3, "r1", RunDispatched(attempt=1, endpoint_url="http://x"), offset=7),
                record(4, "r1", RETRY, offset=8)]
    assert await apply(engine, repeated) == 0
    after = await dump(engine)
    assert after["run_events"] == before["run_events"] and after["runs"] == before["runs"]
    assert await load_offsets(engine, TOPIC) == {0: 9}


async def test_unknown_event_type_advances_the_offset(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "a.db")
    raw = HISTORY[0][2].replace(b'"job.created"', b'"job.renamed_in_the_future"')
    assert await apply(engine, [(0, 0, raw)]) == 0
    assert await load_offsets(engine, TOPIC) == {0: 1}
    assert await get_job(engine, "p", "j") is None


async def test_queries_never_cross_projects(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "a.db")
    await apply(engine, HISTORY)
    assert await get_job(engine, "other", "j") is None
    assert await get_run(engine, "other", "r1") is None
    assert await list_run_events(engine, "other", "r1") == []


async def test_rebuild_in_other_batches_gives_identical_tables(tmp_path: Path) -> None:
    one = await engine_at(tmp_path / "one.db")
    other = await engine_at(tmp_path / "other.db")
    await apply(one, HISTORY)
    for i in range(0, len(HISTORY), 2):
        await apply(other, HISTORY[i:i + 2])
    await apply(other, HISTORY[2:5])  # and a replayed stretch on top
    first, second = await dump(one), await dump(other)
    second["projector_offsets"] = first["projector_offsets"]  # offsets differ by design
    assert first == second
