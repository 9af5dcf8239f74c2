"""Builders for domain tests: given events, when a command, then events."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from events.types import AttemptFailure, Event, JobSpec
from services.domain import (
    Aggregate,
    CancelRun,
    CreateJob,
    FireCronTick,
    FireDueTimers,
    JobState,
    ReportAttemptFailed,
    ReportAttemptSucceeded,
    TriggerRun,
    evolve,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ids = count(1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def cid() -> str:
    return f"c{next(_ids)}"


def empty(job_id: str = "j", project_id: str = "p") -> Aggregate:
    return Aggregate(job=JobState(job_id=job_id, project_id=project_id))


def given(events: list[tuple[str | None, Event]], state: Aggregate | None = None) -> Aggregate:
    state = state or empty()
    for run_id, event in events:
        state = evolve(state, run_id, event)
    return state


def spec(**fields: Any) -> JobSpec:
    return JobSpec(**{"name": "n", "slug": "s", "endpoint_url": "http://e.example/x",
                      "retry_delays_secs": [10], **fields})


def create(now: datetime = T0, **fields: Any) -> CreateJob:
    return CreateJob(command_id=cid(), project_id="p", job_id="j", issued_at=now,
                     spec=spec(**fields))


def trigger(run_id: str = "r1", now: datetime = T0, project_id: str = "p",
            priority: int = 0, concurrency_key: str | None = None) -> TriggerRun:
    return TriggerRun(command_id=cid(), project_id=project_id, job_id="j", issued_at=now,
                      run_id=run_id, payload={"run": run_id}, priority=priority,
                      concurrency_key=concurrency_key)


def succeed(run_id: str = "r1", attempt: int = 1, now: datetime = T0,
            result: Any = None) -> ReportAttemptSucceeded:
    return ReportAttemptSucceeded(command_id=cid(), project_id="p", job_id="j", issued_at=now,
                                  run_id=run_id, attempt=attempt, result=result)


def fail(run_id: str = "r1", attempt: int = 1, now: datetime = T0, retryable: bool = True,
         kind: str = "http_status") -> ReportAttemptFailed:
    failure = AttemptFailure(kind=kind, message="boom", retryable=retryable)
    return ReportAttemptFailed(command_id=cid(), project_id="p", job_id="j", issued_at=now,
                               run_id=run_id, attempt=attempt, failure=failure)


def cancel(run_id: str = "r1", now: datetime = T0) -> CancelRun:
    return CancelRun(command_id=cid(), project_id="p", job_id="j", issued_at=now,
                     run_id=run_id)


def fire(now: datetime, run_ids: Iterable[str] = ("r1",)) -> FireDueTimers:
    return FireDueTimers(command_id=cid(), project_id="p", job_id="j", issued_at=now,
                         run_ids=list(run_ids))


def tick(tick_at: datetime, now: datetime | None = None) -> FireCronTick:
    return FireCronTick(command_id=cid(), project_id="p", job_id="j", issued_at=now or tick_at,
                        tick_at=tick_at, actor="timer", awaits_outcome=False)
