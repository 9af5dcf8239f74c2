"""Issue 8's rules in the pure core: an accepted (202) attempt, its heartbeats and
callbacks, the crash of a silent one, cancel of a running attempt, and the retry delay
(jitter, cap, Retry-After)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.types import AttemptFailure, JobCreated, RunDispatched, RunTriggered
from services.domain import Rejection, RunStatus, decide, handle, timer_due_at
from services.domain.commands import (
    LogRunMessage,
    RecordHeartbeat,
    ReportAttemptAccepted,
    ReportProgress,
)
from services.domain.operations.cancel import CANCEL_GRACE_SECS
from services.domain.retry import RetryAt, retry_decision
from services.executor.call import retry_after_secs
from tests.unit.domain_support import T0, at, cancel, cid, fail, fire, given, spec, succeed


def types(events: list[Any]) -> list[str]:
    return [type(e).__name__ for _, e in events]


def running(**fields: Any) -> list[Any]:
    timeout = fields.get("timeout_secs", 30)
    return [(None, JobCreated(spec=spec(**fields))), ("r1", RunTriggered(timeout_secs=timeout)),
            ("r1", RunDispatched(attempt=1, endpoint_url="http://e.example/x",
                                 deadline_at=at(timeout + 30), at=T0))]


def accept(attempt: int = 1, now: datetime = T0) -> ReportAttemptAccepted:
    return ReportAttemptAccepted(command_id=cid(), project_id="p", job_id="j", issued_at=now,
                                 run_id="r1", attempt=attempt, awaits_outcome=False)


def beat(attempt: int = 1, now: datetime = T0) -> RecordHeartbeat:
    return RecordHeartbeat(command_id=cid(), project_id="p", job_id="j", issued_at=now,
                           run_id="r1", attempt=attempt)


def test_an_accepted_attempt_stays_running_until_its_timeout() -> None:
    state = given(running(timeout_secs=60))
    after = handle(state, accept(now=at(1)))
    assert types(after.events) == ["RunAccepted"]
    run = after.state.runs["r1"]
    assert run.status is RunStatus.RUNNING and run.accepted
    # The executor's report grace no longer applies: the attempt's own timeout does.
    assert run.deadline_at == at(60) and run.heartbeat_due_at is None
    assert isinstance(decide(after.state, accept(now=at(2)), at(2)), Rejection)
    timed_out = handle(after.state, fire(at(60)))
    assert types(timed_out.events) == ["RunRetryScheduled"]
    assert timed_out.events[0][1].failure.kind == "timeout"


def test_heartbeats_keep_an_accepted_attempt_alive_and_silence_crashes_it() -> None:
    state = handle(given(running(timeout_secs=600, heartbeat_timeout_secs=10)),
                   accept(now=at(1))).state
    assert state.runs["r1"].heartbeat_due_at == at(11)
    state = handle(state, beat(now=at(9))).state
    assert timer_due_at(state.runs["r1"]) == at(19)
    assert handle(state, fire(at(18))).events == []  # not due yet
    crashed = handle(state, fire(at(19)))
    assert types(crashed.events) == ["RunCrashed"]
    assert crashed.state.runs["r1"].status is RunStatus.CRASHED
    # Terminal: nothing the endpoint says about it any more is applied.
    assert isinstance(decide(crashed.state, succeed(now=at(20)), at(20)), Rejection)


def test_heartbeats_before_acceptance_are_recorded_but_not_watched() -> None:
    state = given(running(heartbeat_timeout_secs=10))
    after = handle(state, beat(now=at(1)))
    assert types(after.events) == ["RunHeartbeatRecorded"]
    assert after.state.runs["r1"].heartbeat_due_at is None


@pytest.mark.parametrize("command", ["heartbeat", "progress", "message", "complete", "fail"])
def test_a_callback_for_another_attempt_is_rejected(command: str) -> None:
    state = handle(given(running()), fail(now=at(1))).state  # attempt 1 ended: a retry waits
    common = {"command_id": cid(), "project_id": "p", "job_id": "j", "issued_at": at(2),
              "run_id": "r1", "attempt": 1}
    made = {"heartbeat": RecordHeartbeat(**common),
            "progress": ReportProgress(**common, counters={"numSuccess": 1}),
            "message": LogRunMessage(**common, status=1, text="late"),
            "complete": succeed(now=at(2)), "fail": fail(now=at(2))}[command]
    outcome = decide(state, made, at(2))
    assert isinstance(outcome, Rejection) and outcome.code == "conflict"


def test_callbacks_of_a_canceling_run_hear_that_cancel_was_requested() -> None:
    state = handle(given(running()), accept()).state
    assert handle(state, beat(now=at(1))).answer.code is None
    state = handle(state, cancel(now=at(2))).state
    assert state.runs["r1"].status is RunStatus.CANCELING
    assert handle(state, beat(now=at(3))).answer.code == "cancel_requested"
    acknowledged = handle(state, fail(now=at(4)))
    assert types(acknowledged.events) == ["RunCanceled"]
    assert acknowledged.events[0][1].code == "JOB_SYSTEM_CANCELED"


def test_a_canceling_attempt_that_never_answers_ends_at_its_cancel_deadline() -> None:
    state = handle(given(running(timeout_secs=3600)), cancel(now=at(5))).state
    due = at(5 + CANCEL_GRACE_SECS)
    assert timer_due_at(state.runs["r1"]) == due
    assert handle(state, fire(due - timedelta(seconds=1))).events == []
    ended = handle(state, fire(due))
    assert types(ended.events) == ["RunCanceled"]
    assert ended.events[0][1].code == "JOB_SYSTEM_CANCELED" and ended.events[0][1].by_system


def test_waiting_runs_cancel_as_user_canceled() -> None:
    state = given([(None, JobCreated(spec=spec())), ("r1", RunTriggered())])
    outcome = decide(state, cancel(), T0)
    assert not isinstance(outcome, Rejection)
    assert outcome[0][1].code == "JOB_USER_CANCELED"


FAILURE = AttemptFailure(kind="http_status", message="503", status_code=503)


def delay(attempt: int, failure: AttemptFailure = FAILURE, run_id: str = "r", **fields: Any,
          ) -> float:
    decision = retry_decision(attempt, 20, failure, spec(**fields), T0, run_id=run_id)
    assert isinstance(decision, RetryAt)
    return (decision.at - T0).total_seconds()


def test_exponential_delays_double_up_to_the_jobs_cap() -> None:
    fields = {"retry_strategy": "exponential", "retry_delays_secs": [2],
              "retry_max_delay_secs": 20}
    assert [delay(n, **fields) for n in range(1, 7)] == [2, 4, 8, 16, 20, 20]
    # A late attempt of a long policy neither overflows nor passes the cap.
    assert delay(19, **fields) == 20


def test_jitter_shortens_by_at_most_half_and_is_the_same_when_decided_again() -> None:
    fields = {"retry_strategy": "exponential", "retry_delays_secs": [8], "retry_jitter": True}
    seen = [delay(1, run_id=f"r{i}", **fields) for i in range(200)]
    assert all(4 <= d <= 8 for d in seen) and len(set(seen)) > 100
    assert delay(1, run_id="r7", **fields) == delay(1, run_id="r7", **fields)


def test_retry_after_is_a_floor_on_the_delay() -> None:
    waited = AttemptFailure(kind="http_status", message="429", status_code=429,
                            retry_after_secs=42.0)
    assert delay(1, waited, retry_delays_secs=[5]) == 42
    assert delay(1, AttemptFailure(kind="http_status", message="429",
                                   retry_after_secs=1.0), retry_delays_secs=[5]) == 5


def test_retry_after_header_reads_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_secs("120") == 120
    assert retry_after_secs("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60
    assert retry_after_secs("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0
    assert retry_after_secs("soon") is None and retry_after_secs(None) is None
    assert retry_after_secs("9" * 40) == 10**9
