"""The read side's other queries on both stores (tests.stores): dead letters, dependency
paths, quotas and usage, tracked operations, run statuses, a job found. Each against
values set by a scripted history."""

from pathlib import Path

import pytest

from events.types import (
    JobCreated,
    JobDependentAdded,
    JobSweepFinished,
    ProjectOperationStarted,
    ProjectQuotasSet,
    RunDispatched,
    RunFailed,
    RunTriggered,
)
from projections.dead_letters import dead_letter_of, list_dead_letters
from projections.dependencies import path_between, upstreams_of
from projections.operations import get_operation, live_job_ids
from projections.queries import find_job, project_quotas_and_usage, project_usage, run_statuses
from tests.unit.domain_support import at, spec
from tests.unit.test_projections import FAILURE, apply, engine_at, record

pytestmark = pytest.mark.usefixtures("store")

HISTORY = [
    record(1, None, JobCreated(spec=spec(slug="a")), job_id="a", offset=0),
    record(1, None, JobCreated(spec=spec(slug="b")), job_id="b", offset=1),
    record(1, None, JobCreated(spec=spec(slug="c")), job_id="c", offset=2),
    # c runs after b, b after a.
    record(2, None, JobDependentAdded(downstream_job_id="b", condition="on_success"),
           job_id="a", offset=3),
    record(2, None, JobDependentAdded(downstream_job_id="c", condition="on_failure"),
           job_id="b", offset=4),
    record(3, "r1", RunTriggered(payload=None), job_id="a", offset=5),
    record(4, "r1", RunDispatched(attempt=1, endpoint_url="http://x"), job_id="a", offset=6),
    record(5, "r1", RunFailed(attempt=1, failure=FAILURE), job_id="a", offset=7),
    record(6, "r2", RunTriggered(payload=None), job_id="a", offset=8),
    record(1, None, ProjectQuotasSet(max_queued_runs=5), job_id="project:p", offset=9),
    record(2, None, ProjectOperationStarted(operation_id="op1", job_ids=["a", "b"]),
           job_id="project:p", offset=10),
    record(7, None, JobSweepFinished(operation_id="op1", canceled=2), job_id="a",
           offset=11),
]


async def test_the_other_queries_answer_alike_on_every_store(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "q.db")
    assert await apply(engine, HISTORY) == len(HISTORY)

    [dead] = await list_dead_letters(engine, "p", job_id=None, include_replayed=False,
                                     after=None, limit=10)
    assert (dead.run.id, dead.run.status, dead.finished_at) == ("r1", "failed", at(5))
    assert await list_dead_letters(engine, "p", job_id=None, include_replayed=False,
                                   after=(at(5), "r1"), limit=10) == []
    assert await dead_letter_of(engine, "p", "r1") == (True, None)
    assert await dead_letter_of(engine, "q", "r1") == (False, None)

    assert [e.upstream_job_id for e in await upstreams_of(engine, "p", "c")] == ["b"]
    assert await path_between(engine, "p", "a", "c") == ["a", "b", "c"]
    assert await path_between(engine, "p", "c", "a") is None

    quotas, usage = await project_quotas_and_usage(engine, "p", "2026-01-01")
    assert quotas is not None and (quotas.max_queued_runs, quotas.max_runs_per_day) == (5, None)
    assert (usage.queued_runs, usage.runs_today) == (1, 2)  # r2 waits; r1 and r2 today
    usage, seen = await project_usage(engine, "p", "2026-01-01", ["r2", "r9"])
    assert (usage.queued_runs, usage.runs_today, seen) == (1, 2, 1)

    operation = await get_operation(engine, "p", "op1")
    assert operation is not None
    assert (operation.jobs_total, operation.jobs_done, operation.canceled,
            operation.finished_at) == (2, 1, 2, None)
    assert await get_operation(engine, "q", "op1") is None
    assert await live_job_ids(engine, "p", 10) == ["a", "b", "c"]

    assert await run_statuses(engine, "p", ["r1", "r2", "r9"]) == {"r1": "failed",
                                                                 "r2": "queued"}
    found = await find_job(engine, "p", "b")
    assert found is not None and found.slug == "b"
    assert await find_job(engine, "q", "b") is None
