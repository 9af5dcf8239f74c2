"""The state the processor keeps per job, built only by ``evolve``."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from events.types import JobSpec


class RunStatus(StrEnum):
    DELAYED = "delayed"
    QUEUED = "queued"
    RUNNING = "running"
    CANCELING = "canceling"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CRASHED = "crashed"
    CANCELED = "canceled"
    EXPIRED = "expired"


TERMINAL = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.TIMED_OUT,
        RunStatus.CRASHED,
        RunStatus.CANCELED,
        RunStatus.EXPIRED,
    }
)


class RunState(msgspec.Struct, frozen=True, kw_only=True):
    """What decisions about one run need to know; the read model holds the rest."""

    run_id: str
    status: RunStatus
    attempt: int = 0
    max_attempts: int = 3
    timeout_secs: int = 30
    payload: Any = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    next_retry_at: datetime | None = None
    deadline_at: datetime | None = None


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """How a command was answered; the processor keeps it by command id so that a repeated
    command gets the same answer and no second effect."""

    seq: int
    run_id: str | None = None
    rejected: bool = False
    code: str | None = None
    reason: str | None = None


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """A job's definition, its event sequence, and indexes of its unfinished runs.

    Runs themselves live apart (one record each) so that a busy job's state stays small.
    """

    job_id: str
    project_id: str
    spec: JobSpec | None = None
    version: int = 0
    seq: int = 0
    queued: tuple[str, ...] = ()
    delayed: dict[str, datetime] = msgspec.field(default_factory=dict)
    running: tuple[str, ...] = ()
    # Report deadlines of running attempts, so the timer finds overdue ones without
    # reading every run.
    deadlines: dict[str, datetime] = msgspec.field(default_factory=dict)


class Aggregate(msgspec.Struct, frozen=True, kw_only=True):
    """A job and the runs a decision needs: the unit ``decide`` and ``evolve`` work on."""

    job: JobState
    runs: dict[str, RunState] = msgspec.field(default_factory=dict)
