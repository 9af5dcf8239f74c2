"""The read models must not depend on how the log's partitions interleave: the live
projector reads them in the order events arrived, a rebuild (or a projector catching up
after a stop) in whatever order the fetches bring. Each job's events stay in order (one
partition per job); across jobs any interleaving must end in the same tables."""

import itertools
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Table, select

from events import Envelope, encode_event
from events.types import (
    Event,
    JobCreated,
    RunChildSpawned,
    RunCompleted,
    RunDispatched,
    RunProgressReported,
    RunTriggered,
)
from projections.db import create_schema, make_engine
from projections.projector import Record, apply_batch
from projections.tables import metadata
from tests.unit.domain_support import at, spec

TOPIC = "t.events"


class _Log:
    def __init__(self) -> None:
        self.by_job: dict[str, list[tuple[str, str | None, Event]]] = {}
        self.clock = 0

    def add(self, job: str, run: str | None, event: Event) -> None:
        self.by_job.setdefault(job, []).append((job, run, event))

    def partition(self, job: str, index: int) -> list[Record]:
        """The job's events as its partition holds them (partition = the job's index)."""
        out = []
        for seq, (job_id, run, event) in enumerate(self.by_job[job], start=1):
            env = Envelope(event_id=f"{job_id}.{seq}", type=event.TYPE,
                           version=event.VERSION, project_id="p", job_id=job_id, seq=seq,
                           occurred_at=at(seq), command_id=f"c.{job_id}.{seq}", run_id=run)
            out.append((index, seq - 1, encode_event(env, event)))
        return out


def run_tree() -> _Log:
    """A flow (job a) with a child (job b) that has a child of its own (job c); the
    children report counters and complete."""
    log = _Log()
    for job in ("a", "b", "c"):
        log.add(job, None, JobCreated(spec=spec(slug=f"job-{job}")))
    log.add("a", "root", RunTriggered(payload={"n": 1}))
    log.add("a", "root", RunDispatched(attempt=1, endpoint_url="http://x"))
    log.add("a", "root", RunChildSpawned(attempt=1, child_run_id="mid", child_job_id="b"))
    log.add("a", "root", RunProgressReported(attempt=1, counters={"numExport": 1}))
    log.add("b", "mid", RunTriggered(parent_run_id="root", lineage_depth=1))
    log.add("b", "mid", RunDispatched(attempt=1, endpoint_url="http://x"))
    log.add("b", "mid", RunProgressReported(attempt=1, counters={"numSuccess": 3}))
    log.add("b", "mid", RunCompleted(attempt=1))
    log.add("c", "leaf", RunTriggered(parent_run_id="mid", lineage_depth=2))
    log.add("c", "leaf", RunDispatched(attempt=1, endpoint_url="http://x"))
    log.add("c", "leaf", RunProgressReported(attempt=1, counters={"numSuccess": 4,
                                                                  "numError": 1}))
    log.add("c", "leaf", RunCompleted(attempt=1))
    return log


def _compared(table: Table) -> list[Column[Any]]:
    # run_events.position numbers events in the order a store applied them, which is
    # what differs between these orders (the live stream ids of one store).
    return [c for c in table.columns if (table.name, c.name) != ("run_events", "position")]


async def tables_after(path: Path, batches: list[list[Record]]) -> dict[str, Any]:
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    await create_schema(engine)
    try:
        for batch in batches:
            async with engine.begin() as conn:
                await apply_batch(conn, TOPIC, batch)
        async with engine.connect() as conn:
            return {t.name: sorted((await conn.execute(select(*_compared(t)))).all(),
                                   key=repr)
                    for t in metadata.sorted_tables}
    finally:
        await engine.dispose()


async def test_any_order_of_the_partitions_ends_in_the_same_tables(tmp_path: Path) -> None:
    log = run_tree()
    partitions = {job: log.partition(job, i) for i, job in enumerate(("a", "b", "c"))}
    # As it happened: a's events up to the spawn, then b's, then c's, then a's rest.
    # Against it: every order of whole partitions, each applied as one batch and one
    # event per batch (a run's parent may then arrive after its children's counters).
    expected = await tables_after(tmp_path / "live.db", [
        partitions["a"][:4], partitions["b"][:3], partitions["c"],
        partitions["b"][3:], partitions["a"][4:]])
    root = next(r._mapping for r in expected["runs"] if r._mapping["id"] == "root")
    assert root["child_counters"] == {"numSuccess": 7, "numError": 1}
    for n, order in enumerate(itertools.permutations("abc")):
        whole = [partitions[job] for job in order]
        one_by_one = [[r] for job in order for r in partitions[job]]
        for name, batches in (("whole", whole), ("one", one_by_one)):
            got = await tables_after(tmp_path / f"{n}-{name}.db", batches)
            for table in expected:
                assert got[table] == expected[table], (order, name, table)


async def test_finding_new_runs_children_is_an_index_lookup(tmp_path: Path) -> None:
    """The check every batch of new runs now makes must not scan the runs table."""
    from sqlalchemy.dialects import sqlite

    from projections.tables import runs

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/plan.db")
    await create_schema(engine)
    query = (select(runs.c.parent_run_id).distinct()
             .where(runs.c.parent_run_id.in_(["r1", "r2"])))
    sql = str(query.compile(dialect=sqlite.dialect(),
                            compile_kwargs={"literal_binds": True}))
    try:
        async with engine.connect() as conn:
            plan = [row[-1] for row in await conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sql)]
    finally:
        await engine.dispose()
    assert any("ix_runs_parent" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan
