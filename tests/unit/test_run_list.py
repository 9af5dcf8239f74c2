"""The run list (projections.run_list) on SQLite and PostgreSQL, without Kafka: every filter
and sort against the same question answered in Python over a scripted set of runs, both
paginations, and keyset paging while runs arrive."""

import itertools
import json
import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from events import Envelope, encode_event
from events.types import (
    AttemptFailure,
    Event,
    JobCreated,
    RunCompleted,
    RunDispatched,
    RunFailed,
    RunTriggered,
)
from projections.projector import apply_batch
from projections.queries import get_run
from projections.run_list import (
    RunFilters,
    RunOrder,
    ancestors_of,
    children_of,
    list_runs,
    position_of,
    runs_query,
)
from projections.run_list_plan import Label, ReadPlan
from projections.tables import runs
from tests.unit.domain_support import at, spec
from tests.unit.test_projections import engine_at

TOPIC = "t.events"
RUNS = 60
# Every test here runs on both stores (tests.stores).
pytestmark = pytest.mark.usefixtures("store")

class Script:
    """Events for several jobs, each with its own seqs, in one partition's order."""

    def __init__(self) -> None:
        self.records: list[tuple[int, int, bytes]] = []
        self.seqs: dict[str, int] = {}
        self.expected: dict[str, dict[str, Any]] = {}  # run id -> what the list should show

    def emit(self, job_id: str, run_id: str | None, event: Event, when: datetime,
             project: str = "p") -> None:
        seq = self.seqs[job_id] = self.seqs.get(job_id, 0) + 1
        env = Envelope(event_id=f"{job_id}.{seq}", type=event.TYPE, version=event.VERSION,
                       project_id=project, job_id=job_id, seq=seq, occurred_at=when,
                       command_id=f"c{len(self.records)}", run_id=run_id)
        self.records.append((0, len(self.records), encode_event(env, event)))

    def run(self, i: int, project: str = "p", parent: str | None = None) -> str:
        """Run i: its fields and how far it gets follow from i."""
        run_id, job_id = f"run{i:03d}", ("j1" if i % 3 else "j2")
        if project != "p":
            job_id = "other"
        fields = {"job_id": job_id, "priority": i % 4, "triggered_by": "cron" if i % 4 == 0
                  else "api", "batch_id": "b1" if i < 10 else None,
                  "concurrency_key": f"k{i % 3}" if i % 2 else None,
                  "correlation_id": f"corr{i % 7}", "idempotency_key": f"idem{i}" if i % 5
                  else None, "parent_run_id": parent,
                  "tags": {"team": "a" if i % 2 else "b"},
                  "metadata": {"region": "eu" if i % 5 == 0 else "us"},
                  "created_at": at(i), "started_at": None, "finished_at": None}
        self.emit(job_id, run_id, RunTriggered(
            payload={"i": i}, priority=fields["priority"], triggered_by=fields["triggered_by"],
            batch_id=fields["batch_id"], concurrency_key=fields["concurrency_key"],
            correlation_id=fields["correlation_id"], idempotency_key=fields["idempotency_key"],
            parent_run_id=parent, lineage_depth=0 if parent is None else 1,
            tags=fields["tags"], metadata=fields["metadata"]), at(i), project)
        status = "queued"
        if i % 6 != 5:  # most start, a minute after they were made (so orders differ)
            started = at(1000 - i * 7)
            self.emit(job_id, run_id, RunDispatched(attempt=1, endpoint_url="http://x"),
                      started, project)
            fields["started_at"], status = started, "running"
            if i % 3 == 0:
                finished = at(2000 + (i * 13) % 50)
                self.emit(job_id, run_id, RunCompleted(attempt=1), finished, project)
                fields["finished_at"], status = finished, "completed"
            elif i % 3 == 1 and i % 2 == 0:
                finished = at(2000 + (i * 11) % 50)
                failure = AttemptFailure(kind="http_status", message="500", retryable=False)
                self.emit(job_id, run_id, RunFailed(attempt=1, failure=failure), finished,
                          project)
                fields["finished_at"], status = finished, "failed"
        fields["status"] = status
        if project == "p":
            self.expected[run_id] = fields
        return run_id

async def projected(tmp_path: Path, script: Script) -> AsyncEngine:
    engine = await engine_at(tmp_path / "runs.db")
    for i in range(0, len(script.records), 37):  # batches cut anywhere
        async with engine.begin() as conn:
            await apply_batch(conn, TOPIC, script.records[i:i + 37])
    return engine

def scripted() -> Script:
    script = Script()
    for job_id in ("j1", "j2"):
        script.emit(job_id, None, JobCreated(spec=spec(slug=job_id)), at(-1))
    script.emit("other", None, JobCreated(spec=spec(slug="other")), at(-1), project="q")
    for i in range(RUNS):
        script.run(i, parent="run000" if i in (7, 8, 9) else None)
    script.run(99, project="q")  # another project's run: never listed
    return script

def sort_key(order: RunOrder) -> Callable[[tuple[str, dict[str, Any]]], Any]:
    return lambda item: (item[1][order.key], item[0])

def expected(script: Script, keep: Callable[[dict[str, Any]], bool],
             order: RunOrder) -> list[str]:
    found = [(rid, f) for rid, f in script.expected.items() if keep(f)
             and (order.key not in ("started_at", "finished_at") or f[order.key] is not None)]
    return [rid for rid, _ in sorted(found, key=sort_key(order), reverse=order.descending)]

FILTERS: list[tuple[RunFilters, Callable[[dict[str, Any]], bool]]] = [
    (RunFilters(), lambda f: True),
    (RunFilters(equal={"job_id": "j2"}), lambda f: f["job_id"] == "j2"),
    (RunFilters(statuses=("completed", "failed")),
     lambda f: f["status"] in ("completed", "failed")),
    (RunFilters(tags=(("team", "a"),)), lambda f: f["tags"]["team"] == "a"),
    (RunFilters(metadata=(("region", "eu"),)), lambda f: f["metadata"]["region"] == "eu"),
    (RunFilters(tags=(("team", "b"),), metadata=(("region", "eu"),)),
     lambda f: f["tags"]["team"] == "b" and f["metadata"]["region"] == "eu"),
    (RunFilters(tags=(("team", "nobody"),)), lambda f: False),
    *[(RunFilters(equal={column: value}), lambda f, c=column, v=value: f[c] == v)
      for column, value in (("concurrency_key", "k1"), ("batch_id", "b1"),
                            ("triggered_by", "cron"), ("parent_run_id", "run000"),
                            ("correlation_id", "corr3"), ("idempotency_key", "idem7"))],
    (RunFilters(after={"created_at": at(10)}, before={"created_at": at(20)}),
     lambda f: at(10) < f["created_at"] < at(20)),
    (RunFilters(after={"started_at": at(800)}),
     lambda f: f["started_at"] is not None and f["started_at"] > at(800)),
    (RunFilters(before={"finished_at": at(2025)}),
     lambda f: f["finished_at"] is not None and f["finished_at"] < at(2025)),
    (RunFilters(equal={"job_id": "j1"}, statuses=("running",), tags=(("team", "a"),)),
     lambda f: f["job_id"] == "j1" and f["status"] == "running" and f["tags"]["team"] == "a"),
]
ORDERS = [RunOrder(key, descending) for key, descending in itertools.product(
    ("created_at", "started_at", "finished_at", "priority"), (True, False))]

@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    engine = await projected(tmp_path, scripted())
    yield engine
    await engine.dispose()

def plans(filters: RunFilters) -> list[ReadPlan | None]:
    """Every way the run list may read these filters: the plan their sizes choose (None),
    and each the planner could choose on other data (60 runs make every label "rare")."""
    labels: list[Label] = ([("tag", k, v) for k, v in filters.tags]
                           + [("meta", k, v) for k, v in filters.metadata])
    every_time = frozenset({*filters.after, *filters.before})
    return [None, ReadPlan(), ReadPlan(unindexed=every_time),
            *(ReadPlan(label=label, unindexed=every_time) for label in labels)]


@pytest.mark.parametrize("case", range(len(FILTERS)))
async def test_every_filter_in_every_order_pages_through_exactly_the_matching_runs(
        engine: AsyncEngine, case: int) -> None:
    script = scripted()
    filters, keep = FILTERS[case]
    for order, plan in itertools.product(ORDERS, plans(filters)):
        want = expected(script, keep, order)
        # By keyset, 7 at a time...
        got: list[str] = []
        after = None
        while True:
            page = await list_runs(engine, "p", filters, order, 7, after=after, plan=plan)
            got += [v.id for v in page]
            if len(page) < 7:
                break
            after = position_of(page[-1], order)
        assert got == want, (filters, order, plan)
        # ... and by offset.
        by_offset = [v.id for offset in range(0, len(want) + 7, 7)
                     for v in await list_runs(engine, "p", filters, order, 7, offset=offset,
                                              plan=plan)]
        assert by_offset == want, (filters, order, plan)

async def test_keyset_pages_miss_and_repeat_nothing_while_runs_arrive(
        tmp_path: Path) -> None:
    script = scripted()
    engine = await projected(tmp_path, script)
    order: RunOrder = RunOrder("created_at", True)
    try:
        seen: list[str] = []
        page = await list_runs(engine, "p", RunFilters(), order, 10)
        before = set(script.expected)
        arriving = itertools.count(RUNS)
        while page:
            seen += [v.id for v in page]
            # Newer runs arrive between pages.
            start = len(script.records)
            for _ in range(3):
                script.run(next(arriving))
            async with engine.begin() as conn:
                await apply_batch(conn, TOPIC, script.records[start:])
            page = await list_runs(engine, "p", RunFilters(), order, 10,
                                   after=position_of(page[-1], order))
        assert len(seen) == len(set(seen)), "a run was listed twice"
        assert set(seen) == before, "the runs that existed when paging began are all there"
    finally:
        await engine.dispose()

async def test_children_and_ancestors(engine: AsyncEngine) -> None:
    children = await children_of(engine, "p", "run000", 10)
    assert [v.id for v in children] == ["run007", "run008", "run009"]
    child = children[0]
    assert [v.id for v in await ancestors_of(engine, "p", child, 10)] == ["run000"]
    assert await children_of(engine, "q", "run000", 10) == []  # another project's view


@pytest.mark.parametrize("case", range(len(FILTERS)))
async def test_every_filter_and_sort_is_served_by_an_index(engine: AsyncEngine,
                                                           case: int) -> None:
    # The plan: an index search, never a scan of the whole runs table. (Which index it
    # picks for a combination depends on the data; timing filtered pages over 200,000
    # runs is a benchmark still to write.)
    filters, _ = FILTERS[case]
    for order, plan in itertools.product(ORDERS, plans(filters)[1:]):
        after = (at(30), "run030") if order.key != "priority" else (2, "run030")
        query = runs_query("p", filters, order, 100, after=after, plan=plan or ReadPlan())
        compiled = query.compile(dialect=engine.dialect,
                                 compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in compiled.positiontup or []]
        if engine.dialect.name == "postgresql":
            steps = await _postgresql_runs_steps(engine, str(compiled), params)
        else:
            steps = await _sqlite_runs_steps(engine, str(compiled), params)
        assert steps and all(steps.values()), (filters, order, steps)


async def _sqlite_runs_steps(engine: AsyncEngine, sql: str,
                             params: list[Any]) -> dict[str, bool]:
    """SQLite's steps on runs, each with whether it searches an index (SEARCH ... USING
    INDEX; a SCAN, even of an index, reads it whole). The plan does not depend on the
    values, only on their places."""
    async with engine.connect() as conn:
        plan = [row[-1] for row in await conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + sql, tuple(str(p) for p in params))]
    return {step: "USING" in step and "INDEX" in step and not step.startswith("SCAN")
            for step in plan if " runs " in f"{step} "}


async def _postgresql_runs_steps(engine: AsyncEngine, sql: str,
                                 params: list[Any]) -> dict[str, bool]:
    """PostgreSQL's plan nodes on runs, each with whether it searches an index: an index
    (or bitmap) scan whose condition bounds the index's first column. (PostgreSQL also
    checks a condition on a later column while reading an index whole: that is a scan.)
    On 60 rows the planner would rightly read the table whole, so sequential scans are
    priced out first: what is left shows whether an index can serve the query at all,
    which is what 200,000 rows would need."""
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        [(plan,)] = (await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql,
                                                tuple(params))).all()
    if isinstance(plan, str):
        plan = json.loads(plan)
    first = {str(index.name): next(iter(index.columns)).name for index in runs.indexes}
    first["runs_pkey"] = "id"
    found: dict[str, bool] = {}

    def searches(node: dict[str, Any]) -> bool:
        kind = node["Node Type"]
        if kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            leading = first.get(node["Index Name"])
            return leading is not None and f"({leading})" in node.get("Index Cond", "")
        if kind in ("Bitmap Heap Scan", "BitmapAnd", "BitmapOr"):
            return all(searches(child) for child in node.get("Plans", []))
        return False

    def walk(node: dict[str, Any]) -> None:
        if node.get("Relation Name") == "runs":
            found[f"{node['Node Type']} {node.get('Index Name', '')} "
                  f"{node.get('Index Cond', '')}"] = searches(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


async def test_the_longest_labels_are_stored_and_found(tmp_path: Path) -> None:
    # A metadata value may be 1,024 characters, 4 bytes each in UTF-8: more than a
    # PostgreSQL B-tree entry may hold (about 2.7 kB) were the value part of an index key.
    # Random, so that compressing the entry would not save it either.
    rng = random.Random(9)
    long_value = "".join(chr(rng.randrange(0x10000, 0x10FFFF)) for _ in range(1024))
    tag_value = "".join(chr(rng.randrange(0x10000, 0x10FFFF)) for _ in range(256))
    script = Script()
    script.emit("j1", None, JobCreated(spec=spec(slug="j1")), at(-1))
    for i, value in enumerate((long_value, long_value[:-1] + "x", "short")):
        script.emit("j1", f"run{i}", RunTriggered(payload=None, metadata={"blob": value},
                                                  tags={"t": tag_value}), at(i))
    engine = await projected(tmp_path, script)
    try:
        found = await list_runs(engine, "p", RunFilters(metadata=(("blob", long_value),)),
                                RunOrder(), 10)
        assert [v.id for v in found] == ["run0"]
        tagged = await list_runs(engine, "p", RunFilters(tags=(("t", tag_value),)),
                                 RunOrder(), 10)
        assert [v.id for v in tagged] == ["run2", "run1", "run0"]
    finally:
        await engine.dispose()


async def test_a_searched_value_with_a_nul_matches_nothing_on_every_store(
        engine: AsyncEngine) -> None:
    # PostgreSQL's text cannot hold U+0000: the query must still answer, as SQLite does.
    assert await get_run(engine, "p", "run000\x00") is None
    for filters in (RunFilters(equal={"job_id": "j1\x00"}),
                    RunFilters(metadata=(("region", "eu\x00"),)),
                    RunFilters(tags=(("te\x00am", "a"),))):
        assert await list_runs(engine, "p", filters, RunOrder(), 10) == []
    after = await list_runs(engine, "p", RunFilters(), RunOrder(), 100,
                            after=(at(30), "run030\x00"))
    # "run030" sorts before "run030\x00": it is on the page, as on SQLite.
    assert [v.id for v in after] == [f"run{i:03d}" for i in range(30, -1, -1)]


async def test_several_statuses_in_created_order_read_one_status_index_range_each(
        engine: AsyncEngine) -> None:
    query = runs_query("p", RunFilters(statuses=("failed", "canceled", "queued")),
                       RunOrder("created_at", True), 10)
    compiled = query.compile(dialect=engine.dialect,
                             compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup or []]
    if engine.dialect.name == "postgresql":
        # PostgreSQL picks by cost (on 60 rows, the created index with a filter): only
        # that each part searches an index is asked of it.
        steps = await _postgresql_runs_steps(engine, str(compiled), params)
        assert steps and all(steps.values()), steps
        return
    async with engine.connect() as conn:
        plan = [str(row[-1]) for row in await conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), tuple(str(p) for p in params))]
    assert sum("ix_runs_project_status (project_id=? AND status=?)" in step
               for step in plan) == 3, plan


async def _sqlite_plan(engine: AsyncEngine, query: Any) -> list[str]:
    compiled = query.compile(dialect=engine.dialect,
                             compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup or []]
    async with engine.connect() as conn:
        return [str(row[-1]) for row in await conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), tuple(str(p) for p in params))]


async def test_on_sqlite_each_plan_leads_with_the_index_it_names(engine: AsyncEngine) -> None:
    # PostgreSQL plans by cost from its statistics: on 60 rows it rightly reads little
    # through any index, so only SQLite, which follows the query's shape, is asked here.
    if engine.dialect.name != "sqlite":
        return
    newest = RunOrder("created_at", True)
    tagged = RunFilters(tags=(("team", "a"),), metadata=(("region", "eu"),))
    led = await _sqlite_plan(engine, runs_query(
        "p", tagged, newest, 50, plan=ReadPlan(label=("meta", "region", "eu"))))
    # The label's key gives the page in created order: no sort, the other label by its
    # whole key.
    assert led[0].startswith("SEARCH leading USING INDEX sqlite_autoindex_run_labels_1"), led
    assert not any("TEMP B-TREE" in step for step in led), led
    assert any("created_at=? AND run_id=?" in step for step in led), led
    # A wide time range on another column: the sort's index leads, no sort.
    started = RunFilters(after={"started_at": at(800)})
    walked = await _sqlite_plan(engine, runs_query(
        "p", started, newest, 50, plan=ReadPlan(unindexed=frozenset({"started_at"}))))
    assert walked == ["SEARCH runs USING INDEX ix_runs_project_created (project_id=?)"], walked
    # A rare label in another order: its few runs are read by its key and sorted.
    by_priority = await _sqlite_plan(engine, runs_query(
        "p", tagged, RunOrder("priority", True), 50,
        plan=ReadPlan(label=("meta", "region", "eu"))))
    assert by_priority[0].startswith("SEARCH leading USING INDEX"), by_priority


async def test_the_plan_follows_the_sizes_of_the_filters(
        engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    import projections.run_list_plan as planning

    async def plan(filters: RunFilters, key: str = "priority") -> ReadPlan:
        labels: list[Label] = ([("tag", k, v) for k, v in filters.tags]
                               + [("meta", k, v) for k, v in filters.metadata])
        async with engine.connect() as conn:
            return await planning.plan_read(conn, "p", labels, bool(filters.equal),
                                            filters.after, filters.before, key)

    both = RunFilters(tags=(("team", "a"),), metadata=(("region", "eu"),))
    started = RunFilters(after={"started_at": at(800)})
    # 30 runs are in team a, 12 in region eu, 25 started after at(800).
    assert await plan(both) == ReadPlan(label=("meta", "region", "eu"))
    assert await plan(started, "created_at") == ReadPlan()
    monkeypatch.setattr(planning, "PROBE_CAP", 12)
    # Neither label is rare now: in priority order each is checked run by run...
    assert await plan(both) == ReadPlan()
    # ... and in created order the rarer one's key still leads (unless another filter
    # has an index of its own).
    assert await plan(both, "created_at") == ReadPlan(label=("meta", "region", "eu"))
    # Both over the cap: counted further, the rarer (team a: 30 runs, region us: 48) leads.
    common = RunFilters(tags=(("team", "a"),), metadata=(("region", "us"),))
    assert await plan(common, "created_at") == ReadPlan(label=("tag", "team", "a"))
    with_job = RunFilters(equal={"job_id": "j1"}, metadata=(("region", "eu"),))
    assert await plan(with_job, "created_at") == ReadPlan()
    assert await plan(started, "created_at") == ReadPlan(unindexed=frozenset({"started_at"}))
    assert await plan(started, "started_at") == ReadPlan()


async def test_a_time_stamped_before_the_run_was_made_reads_as_its_making(
        tmp_path: Path) -> None:
    # A dispatch stamped by a clock behind the API's: the run's times never come before
    # its creation, in one batch with the trigger or in a later one, so the bounds the
    # run list implies from them (a run is made before it starts or ends) hold.
    script = Script()
    script.emit("j1", None, JobCreated(spec=spec(slug="j1")), at(-1))
    for run_id in ("same", "later"):
        script.emit("j1", run_id, RunTriggered(payload=None), at(100))
    script.emit("j1", "same", RunDispatched(attempt=1, endpoint_url="http://x"), at(90))
    script.emit("j1", "same", RunCompleted(attempt=1), at(95))
    engine = await projected(tmp_path, script)  # batches of 37: all in one
    try:
        start = len(script.records)
        script.emit("j1", "later", RunDispatched(attempt=1, endpoint_url="http://x"), at(80))
        script.emit("j1", "later", RunCompleted(attempt=1), at(101))
        async with engine.begin() as conn:
            await apply_batch(conn, TOPIC, script.records[start:start + 1])
        async with engine.begin() as conn:
            await apply_batch(conn, TOPIC, script.records[start + 1:])
        for run_id, finished in (("same", at(100)), ("later", at(101))):
            view = await get_run(engine, "p", run_id)
            assert view is not None
            assert (view.created_at, view.started_at, view.finished_at) == (
                at(100), at(100), finished), run_id
        ended_before = RunFilters(before={"finished_at": at(101)})
        assert [v.id for v in await list_runs(engine, "p", ended_before, RunOrder(), 10)] \
            == ["same"]
    finally:
        await engine.dispose()


def test_bounds_on_start_and_end_bound_creation_and_the_sorted_time() -> None:
    from projections.run_list import with_implied_bounds

    filters = RunFilters(before={"finished_at": at(50), "started_at": at(40)},
                         after={"created_at": at(10)})
    implied = with_implied_bounds(filters, RunOrder("started_at", True))
    assert implied.before == {"finished_at": at(50), "started_at": at(40),
                              "created_at": at(40)}
    assert implied.after == {"created_at": at(10), "started_at": at(10)}
    tighter = RunFilters(before={"finished_at": at(50), "created_at": at(20)})
    assert with_implied_bounds(tighter, RunOrder()).before["created_at"] == at(20)
    assert with_implied_bounds(RunFilters(), RunOrder()) == RunFilters()
