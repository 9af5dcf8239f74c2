"""Bulk cancel of waiting runs in the pure core: a sweep cancels what its chunk holds that
is waiting, born before it began and of its version, records how far it got, and ends;
a later operation takes over an unfinished one."""

from datetime import timedelta

from msgspec.structs import replace

from events.types import (
    JobCreated,
    JobSweepFinished,
    JobSweepProgressed,
    JobSweepStarted,
    JobUpdated,
    ProjectOperationStarted,
    RunCanceled,
    RunDispatched,
    RunTriggered,
)
from services.domain import Aggregate, RunStatus, handle, job_due_at
from services.domain.commands import StartOperation, SweepWaitingRuns
from tests.unit.domain_support import T0, at, cid, given, spec


def sweep(operation: str = "op_1", version: int | None = None) -> SweepWaitingRuns:
    return SweepWaitingRuns(command_id=cid(), project_id="p", job_id="j", issued_at=T0,
                            operation_id=operation, job_version=version, actor="system",
                            awaits_outcome=False)


def backlog() -> Aggregate:
    return given([(None, JobCreated(spec=spec(max_concurrency=1))),
                  ("r1", RunTriggered()), ("r2", RunTriggered()),
                  ("r3", RunTriggered(scheduled_at=at(600))),
                  ("r1", RunDispatched(attempt=1, endpoint_url="http://e.example/x",
                                       deadline_at=at(60), at=T0)),
                  (None, JobUpdated(spec=spec(max_concurrency=1), version=2,
                                    version_id="v2")),
                  ("r4", RunTriggered(job_version=2))])


def chunk(state: Aggregate, ids: list[str], more: bool = False) -> Aggregate:
    return replace(state, sweep_chunk=ids, sweep_more=more)


def test_a_sweep_cancels_the_waiting_runs_and_finishes() -> None:
    state = chunk(backlog(), ["r2", "r3", "r4"])
    done = handle(state, sweep())
    canceled = [rid for rid, e in done.events if isinstance(e, RunCanceled)]
    assert canceled == ["r2", "r3", "r4"]
    assert all(e.code == "JOB_USER_CANCELED" for _, e in done.events
               if isinstance(e, RunCanceled))
    assert isinstance(done.events[0][1], JobSweepStarted)
    finished = done.events[-1][1]
    assert isinstance(finished, JobSweepFinished) and finished.canceled == 3
    assert done.state.job.sweep is None
    assert done.state.runs["r1"].status is RunStatus.RUNNING  # running runs go on


def test_a_version_sweep_leaves_other_versions() -> None:
    done = handle(chunk(backlog(), ["r2", "r3", "r4"]), sweep(version=1))
    assert [rid for rid, e in done.events if isinstance(e, RunCanceled)] == ["r2", "r3"]
    assert done.state.runs["r4"].status is RunStatus.QUEUED


def test_a_long_sweep_goes_a_chunk_at_a_time_and_is_due_until_done() -> None:
    first = handle(chunk(backlog(), ["r2"], more=True), sweep())
    assert isinstance(first.events[-1][1], JobSweepProgressed)
    assert first.state.job.sweep is not None and first.state.job.sweep.canceled == 1
    assert job_due_at(first.state.job) is not None
    assert job_due_at(first.state.job) < T0 - timedelta(days=1)  # at once
    empty = given([(None, JobCreated(spec=spec()))])
    born_after = handle(chunk(empty, [], more=True), sweep()).state
    assert born_after.job.sweep is not None
    # A run born after the sweep began ends it, and is left alone.
    late = given([("r9", RunTriggered())], born_after)
    ended = handle(chunk(late, ["r9"], more=True), sweep())
    assert [type(e).__name__ for _, e in ended.events] == ["JobSweepFinished",
                                                           "RunDispatched"]
    assert ended.state.runs["r9"].status is RunStatus.RUNNING


def test_a_later_operation_takes_over_an_unfinished_sweep() -> None:
    first = handle(chunk(backlog(), ["r2"], more=True), sweep("op_1")).state
    second = handle(chunk(first, ["r3", "r4"]), sweep("op_2"))
    kinds = [(type(e).__name__, getattr(e, "operation_id", None)) for _, e in second.events]
    assert kinds[0] == ("JobSweepFinished", "op_1") and kinds[1] == ("JobSweepStarted", "op_2")
    assert second.events[0][1].superseded and second.events[0][1].canceled == 1
    assert handle(chunk(first, []), sweep("op_1")).events[:1] == [
        (None, JobSweepFinished(operation_id="op_1", canceled=1))]


def test_an_operation_asks_each_job_for_its_part() -> None:
    start = StartOperation(command_id="c-op", project_id="p", job_id="project:p",
                           issued_at=T0, operation_id="op_1", job_ids=["job_a", "job_b"])
    decided = handle(given([], Aggregate(job=replace(backlog().job, job_id="project:p",
                                                     spec=None))), start)
    assert isinstance(decided.events[0][1], ProjectOperationStarted)
    assert [(c.job_id, c.command_id) for c in decided.followups] == [
        ("job_a", "c-op:follow:0"), ("job_b", "c-op:follow:1")]
    wrong = replace(start, job_id="job_a")
    assert handle(given([(None, JobCreated(spec=spec()))]), wrong).answer.rejected
