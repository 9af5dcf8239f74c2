"""Given events, when a command, then events or a rejection: the run state machine."""

from datetime import timedelta

import msgspec
import pytest

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
from services.domain import Rejection, RunStatus, decide, handle, timer_due_at
from services.domain.operations.dispatch import REPORT_GRACE_SECS
from services.domain.retry import retry_delay_secs
from tests.unit.domain_support import (
    T0,
    at,
    cancel,
    create,
    empty,
    fail,
    fire,
    given,
    spec,
    succeed,
    trigger,
)


def types(events: list) -> list[str]:
    return [type(e).__name__ for _, e in events]


def job(**fields: object) -> list:
    return [(None, JobCreated(spec=spec(**fields)))]


def running(run_id: str = "r1", **fields: object) -> list:
    return [*job(**fields), (run_id, RunTriggered(max_attempts=int(fields.get("max_attempts", 3)))),
            (run_id, RunDispatched(attempt=1, endpoint_url="http://e.example/x"))]


def test_create_job_then_duplicate_is_a_conflict() -> None:
    outcome = decide(empty(), create(), T0)
    assert types(outcome) == ["JobCreated"]
    again = decide(given(job()), create(), T0)
    assert isinstance(again, Rejection) and again.code == "conflict"


@pytest.mark.parametrize(("state", "command", "code"), [
    (empty(), trigger(), "not_found"),
    (given(job()), trigger(project_id="other"), "not_found"),
    (given(job(enabled=False)), trigger(), "conflict"),
    (given(job()), succeed("nope"), "not_found"),
    (given(running()), succeed(attempt=2), "conflict"),
    (given([*running(), ("r1", RunCompleted(attempt=1))]), succeed(), "conflict"),
])
def test_rejections(state, command, code) -> None:
    outcome = decide(state, command, T0)
    assert isinstance(outcome, Rejection) and outcome.code == code, outcome


def test_trigger_queues_then_dispatches_attempt_1() -> None:
    decision = handle(given(job()), trigger())
    assert types(decision.events) == ["RunTriggered", "RunDispatched"]
    dispatched = decision.events[1][1]
    assert isinstance(dispatched, RunDispatched) and dispatched.attempt == 1
    assert decision.state.runs["r1"].status is RunStatus.RUNNING
    assert decision.answer.seq == 3 and decision.answer.run_id == "r1"


def test_max_concurrency_holds_runs_in_the_queue_until_one_finishes() -> None:
    state = handle(given(job(max_concurrency=1)), trigger("r1")).state
    second = handle(state, trigger("r2"))
    assert types(second.events) == ["RunTriggered"]
    assert second.state.job.queued_count == 1
    assert second.state.runs["r2"].status is RunStatus.QUEUED
    done = handle(second.state, succeed("r1"))
    assert types(done.events) == ["RunCompleted", "RunDispatched"]
    assert done.events[1][0] == "r2"


def test_success_completes_with_the_result() -> None:
    outcome = decide(given(running()), succeed(result={"ok": True}), T0)
    assert outcome == [("r1", RunCompleted(attempt=1, result={"ok": True}))]


@pytest.mark.parametrize(("strategy", "delays", "attempt", "expected"), [
    ("fixed", [10], 1, 10), ("fixed", [10], 2, 10),
    ("exponential", [2], 1, 2), ("exponential", [2], 3, 8),
    ("custom", [1, 5, 30], 1, 1), ("custom", [1, 5, 30], 2, 5), ("custom", [1, 5, 30], 9, 30),
])
def test_retry_delays(strategy: str, delays: list[int], attempt: int, expected: int) -> None:
    assert retry_delay_secs(attempt, spec(retry_strategy=strategy,
                                          retry_delays_secs=delays)) == expected


def test_retryable_failure_schedules_a_retry_then_the_timer_requeues_it() -> None:
    outcome = decide(given(running()), fail(now=at(1)), at(1))
    assert types(outcome) == ["RunRetryScheduled"]
    retry = outcome[0][1]
    assert isinstance(retry, RunRetryScheduled) and retry.next_retry_at == at(11)
    state = given(outcome, given(running()))
    assert state.runs["r1"].status is RunStatus.DELAYED
    assert handle(state, fire(at(10))).events == []
    due = handle(state, fire(at(11)))
    assert types(due.events) == ["RunRequeued", "RunDispatched"]
    assert isinstance(due.events[0][1], RunRequeued) and due.events[0][1].next_attempt == 2
    assert due.events[1][1] == RunDispatched(
        attempt=2, endpoint_url="http://e.example/x",
        deadline_at=at(11) + timedelta(seconds=30 + REPORT_GRACE_SECS),
        fallback_endpoint_url=None, timeout_secs=30, job_version=1, at=at(11))


def test_permanent_failure_fails_at_once() -> None:
    outcome = decide(given(running()), fail(retryable=False), T0)
    assert types(outcome) == ["RunFailed"]
    assert outcome[0][1].status == "failed"


def test_last_attempt_timing_out_ends_timed_out() -> None:
    state = given(running(max_attempts=1))
    outcome = decide(state, fail(kind="timeout"), T0)
    assert isinstance(outcome[0][1], RunFailed)
    assert outcome[0][1].status == "timed_out"


def test_failing_twice_then_succeeding_completes_on_attempt_3() -> None:
    state = handle(given(job(retry_delays_secs=[0])), trigger()).state
    now = T0
    for attempt in (1, 2):
        state = handle(state, fail(attempt=attempt, now=now)).state
        now += timedelta(seconds=1)
        state = handle(state, fire(now)).state
    final = handle(state, succeed(attempt=3, now=now))
    assert types(final.events) == ["RunCompleted"]
    assert final.state.runs["r1"].status is RunStatus.COMPLETED
    assert final.state.runs["r1"].attempt == 3


def test_cancel_queued_and_delayed_cancels_at_once() -> None:
    queued = handle(given(job(max_concurrency=1)), trigger("r1")).state
    queued = handle(queued, trigger("r2")).state
    assert decide(queued, cancel("r2"), T0) == [("r2", RunCanceled(code="JOB_USER_CANCELED"))]
    delayed = handle(given(running()), fail()).state
    assert types(decide(delayed, cancel(), T0)) == ["RunCanceled"]


def test_cancel_running_waits_for_the_executor() -> None:
    state = handle(given(running()), cancel()).state
    assert state.runs["r1"].status is RunStatus.CANCELING
    report = handle(state, succeed())
    assert types(report.events) == ["RunCanceled"]
    assert report.state.runs["r1"].status is RunStatus.CANCELED
    assert isinstance(decide(state, cancel(), T0), Rejection)


def test_cancel_finished_run_is_rejected_with_its_status() -> None:
    state = given([*running(), ("r1", RunCompleted(attempt=1))])
    outcome = decide(state, cancel(), T0)
    assert isinstance(outcome, Rejection) and outcome.code == "conflict"
    assert "completed" in outcome.reason


def test_cancel_requested_event_is_recorded() -> None:
    outcome = decide(given(running()), cancel(), T0)
    assert isinstance(outcome[0][1], RunCancelRequested)


def test_evolve_counts_one_seq_per_event() -> None:
    events = running()
    assert given(events).job.seq == len(events)


def test_an_attempt_nobody_reports_on_times_out_at_its_deadline() -> None:
    state = handle(given(job(max_attempts=2, timeout_secs=5)), trigger()).state
    deadline = T0 + timedelta(seconds=5 + REPORT_GRACE_SECS)
    assert timer_due_at(state.runs["r1"]) == deadline
    assert handle(state, fire(deadline - timedelta(seconds=1))).events == []
    lost = handle(state, fire(deadline))
    assert types(lost.events) == ["RunRetryScheduled"]
    assert lost.events[0][1].failure.kind == "timeout"
    assert timer_due_at(lost.state.runs["r1"]) == lost.state.runs["r1"].next_retry_at
    # the executor's report arriving after that is late, and rejected
    assert isinstance(decide(lost.state, succeed(), deadline), Rejection)


def test_a_canceling_run_nobody_reports_on_is_canceled_at_its_deadline() -> None:
    state = handle(handle(given(job(timeout_secs=5)), trigger()).state, cancel()).state
    done = handle(state, fire(T0 + timedelta(seconds=5 + REPORT_GRACE_SECS)))
    assert types(done.events) == ["RunCanceled"]


def test_queued_runs_start_by_priority_then_first_in_first_out() -> None:
    state = handle(given(job(max_concurrency=1)), trigger("r1")).state
    for run_id, priority in (("low", 0), ("high", 5), ("high2", 5), ("low2", 0)):
        state = handle(state, trigger(run_id, priority=priority)).state
    started = []
    current = "r1"
    for _ in range(4):
        decision = handle(state, succeed(current))
        dispatched = [rid for rid, event in decision.events if isinstance(event, RunDispatched)]
        assert len(dispatched) == 1
        current, state = dispatched[0], decision.state
        started.append(current)
    assert started == ["high", "high2", "low", "low2"]


def test_what_a_trigger_writes_does_not_grow_with_the_backlog() -> None:
    state = handle(given(job(max_concurrency=1)), trigger("r0")).state
    sizes = []
    for n in range(1, 301):
        decision = handle(state, trigger(f"r{n}"))
        state = decision.state
        if n in (1, 300):
            sizes.append(len(msgspec.msgpack.encode(decision.state.job)))
    # The job record holds counts, not lists: 300 queued runs cost no more than 1 (a
    # list of ids would add about 10 KB; only the integers' widths differ).
    assert abs(sizes[0] - sizes[1]) <= 8
    assert state.job.queued_count == 300
