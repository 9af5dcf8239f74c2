"""The projector's apply layer on SQLite and on PostgreSQL, without Kafka."""

import random
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from events import Envelope, encode_event
from events.types import (
    AttemptFailure,
    Event,
    JobCreated,
    JobCronTicked,
    JobScheduleSet,
    RunCanceled,
    RunCancelRequested,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)
from projections.projector import (
    RunTriggeredTwice,
    apply_batch,
    load_event_times,
    load_offsets,
    seconds_behind,
)
from projections.queries import get_job, get_run, job_positions_of, list_run_events
from projections.tables import metadata
from tests.stores import engine_at
from tests.unit.domain_support import at, spec

TOPIC = "t.events"
# Every test here runs on both stores (tests.stores).
pytestmark = pytest.mark.usefixtures("store")


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


async def apply(engine: AsyncEngine, records: list[tuple[int, int, bytes]]) -> int:
    async with engine.begin() as conn:
        return (await apply_batch(conn, TOPIC, records)).events


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
                         "retryable": True, "retry_after_secs": None}
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


async def test_a_run_triggered_dispatched_and_completed_in_one_batch_ends_completed(
        tmp_path: Path) -> None:
    one_by_one = await engine_at(tmp_path / "a.db")
    for r in HISTORY:
        await apply(one_by_one, [r])
    together = await engine_at(tmp_path / "b.db")
    async with together.begin() as conn:
        applied = await apply_batch(conn, TOPIC, HISTORY)
    assert (applied.events, applied.positions) == (7, {"j": 7})
    run = await get_run(together, "p", "r1")
    assert run is not None and (run.status, run.attempt, run.last_seq) == ("completed", 2, 7)
    assert await dump(together) == await dump(one_by_one)


async def test_a_run_that_exists_takes_every_change_of_a_batch(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "a.db")
    await apply(engine, HISTORY[:2])  # created and queued
    assert await apply(engine, HISTORY[2:]) == 5  # one update with the union of changes
    run = await get_run(engine, "p", "r1")
    assert run is not None
    assert (run.status, run.attempt, run.result, run.next_retry_at) == (
        "completed", 2, {"ok": True}, None)
    assert run.error is not None and run.error["message"] == "503"
    assert (run.started_at, run.finished_at, run.updated_at) == (at(6), at(7), at(7))


async def test_repeats_within_one_batch_are_dropped_by_seq(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "a.db")
    doubled = [*HISTORY[:4], *[(0, 4 + i, r[2]) for i, r in enumerate(HISTORY[1:4])],
               *[(0, 7 + i, r[2]) for i, r in enumerate(HISTORY[4:])]]
    assert await apply(engine, doubled) == 7
    clean = await engine_at(tmp_path / "b.db")
    await apply(clean, HISTORY)
    first, second = await dump(engine), await dump(clean)
    assert [row[:3] for row in first.pop("projector_offsets")] == [("t.events", 0, 10)]
    second.pop("projector_offsets")
    assert first == second


async def test_a_run_triggered_twice_in_a_batch_fails_it_as_one_by_one_would(
        tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "a.db")
    again = record(8, "r1", RunTriggered(payload=None))
    with pytest.raises(RunTriggeredTwice):
        await apply(engine, [*HISTORY, again])
    assert await load_offsets(engine, TOPIC) == {}  # nothing of the batch was kept


async def test_the_next_cron_tick_and_cron_runs_are_projected(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "a.db")
    created = [record(1, None, JobCreated(spec=spec(slug="c", cron="* * * * *"))),
               record(2, None, JobScheduleSet(next_tick_at=at(60), cron="* * * * *",
                                              timezone="UTC"))]
    await apply(engine, created)  # created and scheduled in one batch
    job = await get_job(engine, "p", "j")
    assert job is not None and job.next_tick_at == at(60)
    await apply(engine, [
        record(3, None, JobCronTicked(tick_at=at(60), run_id="r1", next_tick_at=at(120))),
        record(4, "r1", RunTriggered(triggered_by="cron"))])
    job, run = await get_job(engine, "p", "j"), await get_run(engine, "p", "r1")
    assert job is not None and job.next_tick_at == at(120)
    assert run is not None and run.triggered_by == "cron"
    await apply(engine, [record(5, None, JobScheduleSet())])  # disabled: no next tick
    job = await get_job(engine, "p", "j")
    assert job is not None and job.next_tick_at is None


def random_history(rng: random.Random, steps: int) -> list[tuple[int, int, bytes]]:
    """Jobs on two partitions, runs through every kind of event, and stretches a crashed
    processor wrote twice; ordered per job as the processor writes them."""
    jobs = ["ja", "jb", "jc"]
    seqs = dict.fromkeys(jobs, 0)
    offsets = [0, 0]
    written: dict[str, list[bytes]] = {j: [] for j in jobs}
    status: dict[str, tuple[str, str, int]] = {}  # run -> (job, status, attempt)
    out: list[tuple[int, int, bytes]] = []

    def put(job: str, value: bytes) -> None:
        partition = jobs.index(job) % 2
        out.append((partition, offsets[partition], value))
        offsets[partition] += 1

    def emit(job: str, run_id: str | None, event: Event) -> None:
        seqs[job] += 1
        env = Envelope(event_id=f"{job}.{seqs[job]}", type=event.TYPE,
                       version=event.VERSION, project_id="p", job_id=job, seq=seqs[job],
                       occurred_at=at(len(out)), command_id=f"c{len(out)}", run_id=run_id)
        written[job].append(encode_event(env, event))
        put(job, written[job][-1])

    for job in jobs:
        emit(job, None, JobCreated(spec=spec(slug=job)))
        if job != "jc":
            emit(job, None, JobScheduleSet(next_tick_at=at(60), cron="* * * * *"))
    for n in range(steps):
        live = [r for r, (_, s, _) in status.items() if s not in ("completed", "failed",
                                                                  "canceled")]
        if rng.random() < 0.05:  # a repeated stretch of one job
            job = rng.choice(jobs)
            for value in written[job][-rng.randint(1, 4):]:
                put(job, value)
            continue
        if rng.random() < 0.05:  # the job's schedule changes or ticks
            job = rng.choice(jobs)
            emit(job, None, rng.choice([
                JobScheduleSet(next_tick_at=at(n), cron="* * * * *", timezone="UTC"),
                JobScheduleSet(), JobCronTicked(tick_at=at(n), run_id=f"r{n}",
                                                next_tick_at=at(n + 60), missed=n % 2)]))
            continue
        if not live or rng.random() < 0.3:
            run_id, job = f"r{n}", rng.choice(jobs)
            status[run_id] = (job, "queued", 0)
            emit(job, run_id, RunTriggered(payload={"n": n}, metadata={"k": str(n)},
                                           priority=n % 3, idempotency_key=f"i{n}"))
            continue
        run_id = rng.choice(live)
        job, state, attempt = status[run_id]
        event: Event
        if state == "queued":
            event, state, attempt = (RunDispatched(attempt=attempt + 1, endpoint_url="h"),
                                     "running", attempt + 1)
        elif state == "running":
            choices: list[tuple[Event, str]] = [
                (RunCompleted(attempt=attempt, result={"n": n}), "completed"),
                (RunRetryScheduled(attempt=attempt, failure=FAILURE,
                                   next_retry_at=at(n + 60)), "delayed"),
                (RunFailed(attempt=attempt, failure=FAILURE, status="timed_out"), "failed"),
                (RunCancelRequested(reason="stop"), "canceling")]
            event, state = rng.choice(choices)
        elif state == "delayed":
            choices = [(RunRequeued(next_attempt=attempt + 1), "queued"),
                       (RunCanceled(by_system=True), "canceled")]
            event, state = rng.choice(choices)
        else:
            event, state = RunCanceled(reason="stop"), "canceled"
        status[run_id] = (job, state, attempt)
        emit(job, run_id, event)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_any_batch_split_gives_the_tables_of_one_event_at_a_time(
        tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    history = random_history(rng, 300)
    reference = await engine_at(tmp_path / "one.db")
    for r in history:
        await apply(reference, [r])
    expected = await dump(reference)
    for name, sizes in [("whole", [len(history)]), ("random", None)]:
        engine = await engine_at(tmp_path / f"{name}.db")
        i = 0
        while i < len(history):
            n = sizes.pop(0) if sizes else rng.randint(1, 60)
            await apply(engine, history[i:i + n])
            i += n
        assert await dump(engine) == expected, name
    assert {"completed", "timed_out", "canceled"} <= {row[3] for row in expected["runs"]}


async def test_every_job_field_and_the_toggles_are_projected(tmp_path: Path) -> None:
    from events.types import JobDisabled, JobEnabled, RateLimitKey

    engine = await engine_at(tmp_path / "a.db")
    full = spec(slug="full", group_id="g1", environment_id="prod", enabled=False,
                rate_limit_keys=[RateLimitKey(name="k", max=2, window_secs=10)],
                webhook_secret_sha256="ab" * 32, created_by="p:admin")
    await apply(engine, [record(1, None, JobCreated(spec=full, version_id="jv_1",
                                                    enabled=False))])
    job = await get_job(engine, "p", "j")
    assert job is not None and not job.enabled
    assert (job.group_id, job.environment_id, job.version_id) == ("g1", "prod", "jv_1")
    assert job.spec["rate_limit_keys"] == [{"name": "k", "max": 2, "window_secs": 10}]
    await apply(engine, [record(2, None, JobEnabled(by="p:operator"), offset=1),
                         record(3, None, JobDisabled(by="p:admin"), offset=2),
                         record(4, None, JobEnabled(by="p:admin"), offset=3)])
    job = await get_job(engine, "p", "j")
    assert job is not None and job.enabled and job.updated_by == "p:admin"
    assert job.updated_at == at(4) and job.last_seq == 4


async def test_versions_and_tags_follow_updates_and_the_list_filters_on_them(
        tmp_path: Path) -> None:
    from events.types import JobDeleted, JobUpdated
    from projections.queries import JobFilters, list_job_versions, list_jobs

    engine = await engine_at(tmp_path / "a.db")
    await apply(engine, [
        record(1, None, JobCreated(spec=spec(slug="a", tags={"t": "1"}))),
        record(2, None, JobUpdated(spec=spec(slug="a", tags={"t": "2"}), version=2,
                                   version_id="jv_2", changed_fields=["tags"]), offset=1),
        record(1, None, JobCreated(spec=spec(slug="b", tags={"t": "2"})), offset=2,
               job_id="k"),
        record(2, None, JobDeleted(), offset=3, job_id="k"),
    ])
    versions = await list_job_versions(engine, "p", "j", None, 10)
    assert [(v.version, v.changed_fields) for v in versions] == [(2, ["tags"]), (1, [])]
    found = await list_jobs(engine, "p", JobFilters(tags=[("t", "2")]), None, 10)
    assert [job.id for job in found] == ["j"]  # k is deleted
    assert await list_jobs(engine, "p", JobFilters(tags=[("t", "1")]), None, 10) == []


async def test_each_partition_keeps_when_its_last_applied_event_happened(
        tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "times.db")
    try:
        await apply(engine, HISTORY[:3])
        assert await load_event_times(engine, TOPIC) == {0: at(3)}
        await apply(engine, HISTORY[3:])
        assert await load_event_times(engine, TOPIC) == {0: at(7)}
        assert await seconds_behind(engine, TOPIC, [], at(60)) == 0.0
        assert await seconds_behind(engine, TOPIC, [0], at(60)) == 53.0
        assert await seconds_behind(engine, TOPIC, [0, 1], at(60)) is None  # 1: none yet
    finally:
        await engine.dispose()


async def test_a_cancel_operation_keeps_any_version_the_api_takes(tmp_path: Path) -> None:
    from events.types import ProjectOperationStarted
    from projections.operations import get_operation

    # POST .../cancel-waiting takes job_version up to 2**31: past a 32-bit column.
    engine = await engine_at(tmp_path / "a.db")
    started = ProjectOperationStarted(operation_id="op1", job_ids=["j"], job_version=2**31)
    assert await apply(engine, [record(1, None, started, job_id="project:p")]) == 1
    view = await get_operation(engine, "p", "op1")
    assert view is not None and view.job_version == 2**31


async def test_the_schema_is_dropped_and_made_again(tmp_path: Path) -> None:
    # What `jobledger projector --rebuild` does before replaying the log.
    from projections.db import create_schema, drop_schema

    engine = await engine_at(tmp_path / "a.db")
    await apply(engine, HISTORY)
    await drop_schema(engine)
    await create_schema(engine)
    await create_schema(engine)  # every start makes it again: a second time changes nothing
    assert await get_run(engine, "p", "r1") is None
    assert await apply(engine, HISTORY) == 7
    run = await get_run(engine, "p", "r1")
    assert run is not None and run.status == "completed"


async def test_services_starting_together_make_the_schema_once(tmp_path: Path) -> None:
    # The API and the projector both make the schema at start, at the same moment on a
    # new database: neither may fail for the other (PostgreSQL refused the second CREATE
    # TABLE of a name while the first was not committed).
    import asyncio

    from projections.db import create_schema, drop_schema, make_engine

    first = await engine_at(tmp_path / "a.db")
    await drop_schema(first)
    url = first.url.render_as_string(hide_password=False)
    others = [make_engine(url) for _ in range(3)]
    try:
        await asyncio.gather(*(create_schema(engine) for engine in (first, *others)))
        assert await apply(first, HISTORY) == 7
    finally:
        for engine in others:
            await engine.dispose()
