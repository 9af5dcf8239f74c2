"""The processor's in-memory indexes agree with the run records they are derived from."""

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.domain import RunState, RunStatus, dispatch_order
from services.processor.indexes import (
    ASK_AGAIN,
    QueueIndex,
    RunIndexes,
    TimerIndex,
    WaitingIndex,
)
from tests.unit.domain_support import T0, at

STATUSES = st.sampled_from(list(RunStatus))


def run(run_id: str, status: RunStatus = RunStatus.QUEUED, job_id: str = "j",
        priority: int = 0, position: int = 0, **fields: object) -> RunState:
    return RunState(run_id=run_id, status=status, job_id=job_id, priority=priority,
                    position=position, **fields)  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.integers(0, 15), STATUSES, st.integers(-2, 2),
                          st.integers(0, 50), st.sampled_from(["a", "b"])), max_size=80),
       st.integers(1, 20))
def test_queue_index_gives_the_dispatch_order_of_what_is_queued_now(
        updates: list[tuple[int, RunStatus, int, int, str]], limit: int) -> None:
    index, latest = QueueIndex(), {}
    for number, status, priority, position, job in updates:
        record = run(f"r{number}", status, job, priority, position)
        if f"r{number}" in latest and latest[f"r{number}"].job_id != job:
            continue  # a run never changes job
        latest[record.run_id] = record
        index.update(record)
    for job in ("a", "b"):
        queued = sorted((r for r in latest.values()
                         if r.job_id == job and r.status is RunStatus.QUEUED),
                        key=lambda r: (dispatch_order(r), r.run_id))
        got = index.first(job, limit)
        assert len(got) == min(limit, len(queued))
        keys = [dispatch_order(latest[rid]) for rid in got]
        assert keys == [dispatch_order(r) for r in queued[:limit]]
        assert index.first(job, limit) == got  # reading does not consume


@given(st.lists(st.tuples(st.integers(0, 15), STATUSES, st.sampled_from(["a", "b"])),
                max_size=80), st.integers(-1, 20), st.integers(1, 20))
def test_the_waiting_index_gives_each_jobs_waiting_runs_by_birth(
        updates: list[tuple[int, RunStatus, str]], after: int, limit: int) -> None:
    index, latest = WaitingIndex(), {}
    for number, status, job in updates:
        run_id = f"r{number}"
        if run_id in latest and latest[run_id].job_id != job:
            continue  # a run never changes job, nor its birth
        record = run(run_id, status, job, born=number)
        latest[run_id] = record
        index.update(record)
    for job in ("a", "b"):
        waiting = sorted((r.born, r.run_id) for r in latest.values() if r.job_id == job
                         and r.status in (RunStatus.QUEUED, RunStatus.DELAYED)
                         and r.born > after)
        assert index.after(job, after, limit) == [rid for _, rid in waiting[:limit]]


def test_higher_priority_first_then_first_in_first_out() -> None:
    index = QueueIndex()
    for record in (run("old", position=1), run("new", position=9),
                   run("urgent", priority=5, position=12), run("urgent2", priority=5,
                                                                position=13)):
        index.update(record)
    assert index.first("j", 10) == ["urgent", "urgent2", "old", "new"]
    index.update(run("urgent", RunStatus.RUNNING, priority=5, position=12))
    assert index.first("j", 2) == ["urgent2", "old"]


def test_timers_come_due_once_then_again_less_often_until_the_run_moves_on() -> None:
    timers = TimerIndex()
    timers.update(run("r1", RunStatus.DELAYED, next_retry_at=at(10)))
    timers.update(run("r2", RunStatus.RUNNING, deadline_at=at(20)))
    timers.update(run("r3", RunStatus.COMPLETED))
    assert timers.take_due(at(9)) == {}
    assert timers.take_due(at(10)) == {"j": ["r1"]}
    assert timers.take_due(at(10)) == {}  # asked; not again at once
    assert timers.take_due(at(10) + ASK_AGAIN) == {"j": ["r1"]}
    timers.update(run("r1", RunStatus.QUEUED))  # the retry was decided: no timer
    assert timers.take_due(at(100)) == {"j": ["r2"]}
    assert len(timers) == 1


def test_a_rebuild_indexes_what_the_records_say() -> None:
    indexes = RunIndexes()
    indexes.rebuild([run("q", position=3), run("d", RunStatus.DELAYED,
                                               next_retry_at=T0 + timedelta(seconds=1)),
                     run("x", RunStatus.CANCELED)])
    assert indexes.queue.first("j", 5) == ["q"]
    assert indexes.timers.take_due(at(1)) == {"j": ["d"]}
