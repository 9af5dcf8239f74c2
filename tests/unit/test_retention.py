"""Retention without Kafka: purge_at for each way a run ends and each setting (by the
log's times, whatever order the partitions arrive in), the sweep's effect on every table
that holds a run, its batches and its index, a late event of a purged run, and the 404
RUN_PURGED every run route answers."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from events import Envelope, encode_event
from events.types import (
    AttemptFailure,
    Event,
    JobCreated,
    ProjectRetentionSet,
    RunCanceled,
    RunCompleted,
    RunCrashed,
    RunDispatched,
    RunExpired,
    RunFailed,
    RunTriggered,
    RunWebhookAttempted,
)
from projections.projector import apply_batch
from projections.queries import get_run, job_positions_of
from projections.retention import DUE_RUNS, purged_at, retention_of, sweep
from projections.run_list import RunFilters, RunOrder, list_runs
from projections.tables import (
    dead_letters,
    job_positions,
    project_days,
    purged_runs,
    run_events,
    run_labels,
    runs,
)
from schemas.api import RetentionRequest
from services.api.context import ApiContext
from services.api.errors import ApiError
from services.api.runs import run_view
from services.config import ApiKey
from services.domain import Rejection, SetProjectRetention, decide, project_stream
from services.domain.retention import (
    DEFAULT_RETENTION_DAYS,
    MAX_RETENTION_DAYS,
    MIN_RETENTION_DAYS,
    purge_at,
    retention_days,
)
from services.projector.purge import STARVED_AFTER, Sweeper, skewed_clock
from tests.unit.domain_support import T0, at, empty, spec
from tests.unit.test_projections import engine_at

TOPIC = "t.events"
DAY = timedelta(days=1)
FAILURE = AttemptFailure(kind="http_status", message="500", retryable=False)
Record = tuple[int, int, bytes]


class Log:
    """Events of several streams, each with its own seqs; records cut per partition."""

    def __init__(self) -> None:
        self.seqs: dict[str, int] = {}
        self.offsets: dict[int, int] = {}

    def emit(self, job_id: str, run_id: str | None, event: Event, when: datetime,
             project: str = "p", partition: int = 0) -> Record:
        seq = self.seqs[job_id] = self.seqs.get(job_id, 0) + 1
        offset = self.offsets[partition] = self.offsets.get(partition, -1) + 1
        env = Envelope(event_id=f"{job_id}.{seq}", type=event.TYPE, version=event.VERSION,
                       project_id=project, job_id=job_id, seq=seq, occurred_at=when,
                       command_id=f"c.{job_id}.{seq}", run_id=run_id)
        return (partition, offset, encode_event(env, event))

    def job(self, job_id: str = "j", project: str = "p") -> Record:
        return self.emit(job_id, None, JobCreated(spec=spec(slug=job_id)), at(-10), project)

    def retention(self, days: int, when: datetime, project: str = "p") -> Record:
        return self.emit(project_stream(project), None,
                         ProjectRetentionSet(run_retention_days=days, by="p:admin"), when,
                         project, partition=1)

    def run(self, run_id: str, ending: Event | None, ended: datetime, job_id: str = "j",
            project: str = "p", **trigger: Any) -> list[Record]:
        """A run triggered and started a minute before ``ended``, ended by ``ending``."""
        made = [self.emit(job_id, run_id, RunTriggered(**trigger), ended - timedelta(minutes=1),
                          project),
                self.emit(job_id, run_id, RunDispatched(attempt=1, endpoint_url="http://x"),
                          ended - timedelta(seconds=30), project)]
        if ending is not None:
            made.append(self.emit(job_id, run_id, ending, ended, project))
        return made


ENDINGS: dict[str, Event] = {
    "completed": RunCompleted(attempt=1, result={"ok": True}),
    "failed": RunFailed(attempt=1, failure=FAILURE),
    "timed_out": RunFailed(attempt=1, failure=FAILURE, status="timed_out"),
    "crashed": RunCrashed(attempt=1, heartbeat_due_at=at(0)),
    "canceled": RunCanceled(),
    "expired": RunExpired(expires_at=at(0)),
}


async def applied(engine: AsyncEngine, *batches: list[Record]) -> None:
    for batch in batches:
        async with engine.begin() as conn:
            await apply_batch(conn, TOPIC, batch)


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    engine = await engine_at(tmp_path / "retention.db")
    yield engine
    await engine.dispose()


async def purge_at_of(engine: AsyncEngine, run_id: str) -> datetime | None:
    view = await get_run(engine, "p", run_id)
    assert view is not None
    return view.purge_at


# -- the policy, pure ---------------------------------------------------------------

@pytest.mark.parametrize(("settings", "ended", "days"), [
    ([], at(0), DEFAULT_RETENTION_DAYS),
    ([(at(0), 1, 7)], at(0), 7),  # set at the very moment it ended: in force
    ([(at(0), 1, 7)], at(-1), DEFAULT_RETENTION_DAYS),  # ended just before: not yet
    ([(at(0), 1, 7), (at(100), 2, 90)], at(50), 7),
    ([(at(100), 2, 90), (at(0), 1, 7)], at(150), 90),  # order given does not matter
    ([(at(0), 1, 7), (at(0), 2, 1)], at(0), 1),  # same moment: the later on the stream
])
def test_retention_in_force_when_the_run_ended(settings: list[tuple[datetime, int, int]],
                                               ended: datetime, days: int) -> None:
    assert retention_days(settings, ended) == days
    assert purge_at(settings, ended) == ended + days * DAY


def test_the_contract_states_the_cores_bounds() -> None:
    schema = msgspec.json.schema(RetentionRequest)
    days = schema["$defs"]["RetentionRequest"]["properties"]["run_retention_days"]
    assert (days["minimum"], days["maximum"]) == (MIN_RETENTION_DAYS, MAX_RETENTION_DAYS)


@pytest.mark.parametrize(("days", "ok"), [(0, False), (1, True), (3650, True), (3651, False)])
def test_the_setting_is_decided_on_the_projects_stream_within_bounds(days: int,
                                                                     ok: bool) -> None:
    command = SetProjectRetention(command_id="c1", project_id="p", job_id=project_stream("p"),
                                  issued_at=T0, actor="p:admin", run_retention_days=days)
    decided = decide(empty(project_stream("p")), command, T0)
    if ok:
        assert decided == [(None, ProjectRetentionSet(run_retention_days=days, by="p:admin"))]
    else:
        assert isinstance(decided, Rejection) and decided.code == "invalid"
    elsewhere = decide(empty("j"), SetProjectRetention(
        command_id="c2", project_id="p", job_id="j", issued_at=T0, actor="p:admin",
        run_retention_days=7), T0)
    assert isinstance(elsewhere, Rejection)


# -- purge_at in the projector ----------------------------------------------------------

@pytest.mark.parametrize("status", sorted(ENDINGS))
async def test_every_ending_gets_purge_at_by_the_setting_in_force(engine: AsyncEngine,
                                                                  status: str) -> None:
    log = Log()
    ending = ENDINGS[status]
    await applied(engine, [log.job(), *log.run("before", ending, at(100))],
                  [log.retention(7, at(200))],
                  [*log.run("after", ending, at(300)), *log.run("running", None, at(400))])
    before, after = await get_run(engine, "p", "before"), await get_run(engine, "p", "after")
    assert before is not None and after is not None
    assert (before.status, after.status) == (status, status)
    assert before.purge_at == at(100) + DEFAULT_RETENTION_DAYS * DAY  # kept its purge_at
    assert after.purge_at == at(300) + 7 * DAY
    assert await purge_at_of(engine, "running") is None  # not ended: no purge_at


async def test_a_run_made_and_ended_in_one_batch_with_the_setting(engine: AsyncEngine) -> None:
    log = Log()
    await applied(engine, [log.job(), log.retention(3, at(0)),
                           *log.run("r", ENDINGS["completed"], at(10))])
    assert await purge_at_of(engine, "r") == at(10) + 3 * DAY


async def test_a_setting_applied_late_corrects_runs_that_ended_after_it(
        engine: AsyncEngine) -> None:
    # The project's stream (partition 1) lags: the run's end, at 300, is applied before
    # the setting made at 200. The rebuild order (setting first) gives the same purge_at.
    log = Log()
    job = log.job()
    early = log.run("early", ENDINGS["completed"], at(100))
    late = log.run("late", ENDINGS["failed"], at(300))
    setting = log.retention(2, at(200))
    await applied(engine, [job, *early, *late], [setting])
    live = (await purge_at_of(engine, "early"), await purge_at_of(engine, "late"))
    assert live == (at(100) + DEFAULT_RETENTION_DAYS * DAY, at(300) + 2 * DAY)

    await engine.dispose()
    replay = await engine_at(Path(str(engine.url.database)).with_name("replay.db"))
    try:
        await applied(replay, [job, setting, *early, *late])
        assert (await purge_at_of(replay, "early"), await purge_at_of(replay, "late")) == live
    finally:
        await replay.dispose()


async def test_the_setting_reads_back(engine: AsyncEngine) -> None:
    assert await retention_of(engine, "p") == (DEFAULT_RETENTION_DAYS, None)
    log = Log()
    await applied(engine, [log.retention(7, at(0)), log.retention(90, at(5)),
                           log.retention(1, at(1), project="q")])
    assert await retention_of(engine, "p") == (90, at(5))
    assert await retention_of(engine, "q") == (1, at(1))


# -- the sweep ---------------------------------------------------------------------

async def scripted(engine: AsyncEngine) -> Log:
    """Project p keeps runs 1 day, q the default 30. Every p run but the last ended at
    hour i; each has a tag and metadata; the failed ones are dead letters."""
    log = Log()
    records = [log.job(), log.job("k", project="q"), log.retention(1, at(-5))]
    for i in range(6):
        ending = ENDINGS["failed"] if i % 2 else ENDINGS["completed"]
        records += log.run(f"r{i}", ending, at(3600 * i), tags={"team": f"t{i}"},
                           metadata={"region": "eu", "n": str(i)}, batch_id="b1")
    records += log.run("running", None, at(0), tags={"team": "t9"}, metadata={"n": "9"})
    records += log.run("q1", ENDINGS["failed"], at(0), job_id="k", project="q",
                       tags={"team": "t0"})
    await applied(engine, records)
    return log


async def count(engine: AsyncEngine, table: Any, **where: str) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_the_sweep_removes_exactly_the_due_runs_from_every_table(
        engine: AsyncEngine) -> None:
    await scripted(engine)
    before = {t.name: await count(engine, t) for t in (runs, run_events, run_labels,
                                                       dead_letters)}
    async with engine.connect() as conn:
        days_before = (await conn.execute(select(project_days))).all()
    now = at(3600 * 2) + DAY  # r0, r1, r2 are due (purge_at <= now), r3.. not yet
    assert sorted(await sweep(engine, now)) == ["r0", "r1", "r2"]

    for run_id in ("r0", "r1", "r2"):
        assert await get_run(engine, "p", run_id) is None
        for table, column in ((runs, "id"), (run_events, "run_id"), (run_labels, "run_id"),
                              (dead_letters, "run_id")):
            assert await count(engine, table, **{column: run_id}) == 0, (table.name, run_id)
        assert await purged_at(engine, "p", run_id) == now
        assert await purged_at(engine, "q", run_id) is None  # another project's: unknown
    # Exactly those: r0..r2 had 3 events, 3 labels (a tag, two metadata entries) each,
    # and r1 was the one dead letter among them.
    assert await count(engine, runs) == before["runs"] - 3
    assert await count(engine, run_events) == before["run_events"] - 9
    assert await count(engine, run_labels) == before["run_labels"] - 9
    assert await count(engine, dead_letters) == before["dead_letters"] - 1
    for run_id in ("r3", "r4", "r5", "running", "q1"):
        assert await count(engine, run_events, run_id=run_id) >= 2, run_id
    assert await count(engine, run_labels, run_id="r3") == 3
    assert await count(engine, dead_letters, run_id="q1") == 1
    # Aggregates are not runs: the day's count of runs made stays.
    async with engine.connect() as conn:
        assert (await conn.execute(select(project_days))).all() == days_before
    listed = await list_runs(engine, "p", RunFilters(equal={"batch_id": "b1"}), RunOrder(), 100)
    assert [v.id for v in listed] == ["r5", "r4", "r3"]
    assert await sweep(engine, now) == []  # nothing more is due


async def test_the_sweep_goes_in_batches_oldest_first(engine: AsyncEngine) -> None:
    await scripted(engine)
    far = at(0) + 365 * DAY  # every ended run of p and q is due
    found = [await sweep(engine, far, limit=2) for _ in range(5)]
    # By purge_at: p's runs a day after they ended, hour by hour; q's 30 days after.
    assert found == [["r0", "r1"], ["r2", "r3"], ["r4", "r5"], ["q1"], []]
    assert await get_run(engine, "p", "running") is not None  # never ended: never due
    assert await count(engine, purged_runs) == 7


async def test_the_due_runs_are_read_by_their_index(engine: AsyncEngine) -> None:
    await scripted(engine)
    compiled = DUE_RUNS.compile(dialect=engine.dialect)
    given = {"now": at(0).isoformat(), "limit": 10}  # and SQLite's OFFSET, 0
    values = tuple(given.get(name, 0) for name in compiled.positiontup or [])
    async with engine.connect() as conn:
        plan = [row[-1] for row in await conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), values)]
    assert any("ix_runs_purge_at" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


async def test_every_statement_of_the_sweep_and_the_correction_uses_an_index(
        engine: AsyncEngine) -> None:
    log = await scripted(engine)
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if not statement.lstrip().upper().startswith(("INSERT", "PRAGMA", "EXPLAIN")):
            seen.append((statement, parameters[0] if executemany else parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await sweep(engine, at(0) + 2 * DAY)
        # A setting that corrects p's ended runs, and a late event of a purged one.
        await applied(engine, [log.retention(3, at(0)), log.emit(
            "j", "r0", RunWebhookAttempted(message_id="m", event_type="run.completed",
                                           delivery_attempt=1, delivered=True, final=True),
            at(0) + 3 * DAY)])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    tables = {"runs", "run_events", "run_labels", "dead_letters", "purged_runs",
              "project_retention"}
    checked = set()
    async with engine.connect() as conn:
        for statement, parameters in seen:
            plan = [row[-1] for row in await conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)]
            for step in plan:
                if (name := step.split()[1]) in tables:
                    checked.add(name)
                    assert not step.startswith("SCAN"), (statement, plan)
    assert tables <= checked, checked


async def test_a_late_event_of_a_purged_run_does_no_harm(engine: AsyncEngine) -> None:
    log = await scripted(engine)
    await sweep(engine, at(0) + 2 * DAY)
    assert await get_run(engine, "p", "r0") is None
    # The run's webhook delivery is reported after it was purged.
    webhook = log.emit("j", "r0", RunWebhookAttempted(
        message_id="m", event_type="run.completed", delivery_attempt=1, delivered=True,
        final=True), at(0) + 3 * DAY)
    await applied(engine, [webhook])
    assert await get_run(engine, "p", "r0") is None
    assert await count(engine, run_events, run_id="r0") == 0
    # ... yet the job's position moved past it: the at-most-once guard holds.
    assert (await job_positions_of(engine, ["j"]))["j"] == log.seqs["j"]
    async with engine.connect() as conn:
        assert (await conn.execute(select(job_positions.c.last_seq).where(
            job_positions.c.job_id == "j"))).scalar_one() == log.seqs["j"]
    # And a later run of the same job is applied as usual.
    await applied(engine, log.run("r9", ENDINGS["completed"], at(0) + 4 * DAY))
    assert await purge_at_of(engine, "r9") == at(0) + 5 * DAY


# -- the API's answer ----------------------------------------------------------------

async def test_a_purged_run_answers_404_run_purged(engine: AsyncEngine) -> None:
    await scripted(engine)
    await sweep(engine, at(0) + DAY)  # r0 only
    ctx = cast(ApiContext, SimpleNamespace(engine=engine))
    key = ApiKey("p", "viewer", "h")
    with pytest.raises(ApiError) as purged:
        await run_view(ctx, key, "r0")
    assert purged.value.status == 404 and purged.value.code == "RUN_PURGED"
    assert "purged" in purged.value.message and (at(0) + DAY).isoformat() in purged.value.message
    assert [(d.field, d.reason) for d in purged.value.details] == [("run_id", "purged")]
    with pytest.raises(ApiError) as missing:
        await run_view(ctx, key, "nothing")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as elsewhere:  # another project's purged run: unknown
        await run_view(ctx, ApiKey("q", "viewer", "h"), "r0")
    assert elsewhere.value.code == "not_found"
    assert (await run_view(ctx, key, "r5")).purge_at == at(3600 * 5) + DAY


async def test_the_projectors_sweeper_waits_for_a_backlog_and_its_interval(
        engine: AsyncEngine) -> None:
    log = await scripted(engine)
    sweeper = Sweeper(engine, every_secs=3600, batch=4, clock=lambda: at(0) + 365 * DAY)
    assert await sweeper.turn(caught_up=False) == 0  # events first
    assert await sweeper.turn(caught_up=True) == 4  # a full batch: more may be due ...
    assert await sweeper.turn(caught_up=True) == 3  # ... so the next turn goes on
    assert await sweeper.turn(caught_up=True) == 0  # then it waits its interval
    assert sweeper.purged == 7
    sweeper.next_at -= 3600  # the interval passed, but events keep coming in full fetches
    await applied(engine, log.run("late", ENDINGS["completed"], at(0), job_id="k",
                                    project="q"))
    assert await sweeper.turn(caught_up=False) == 0
    sweeper.next_at -= STARVED_AFTER * 3600  # ... for STARVED_AFTER intervals: it sweeps
    assert await sweeper.turn(caught_up=False) == 1
    assert skewed_clock(86_400)() - datetime.now(UTC) > timedelta(hours=23)
