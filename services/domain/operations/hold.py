"""The start gates of a job (execution window, rate limit) and the hold follow-up of
every command.

``start_room`` says how many runs may start now as far as the gates go; ``dispatchable``
takes it into account. After any command, ``handle`` compares the hold the job should
have (queued runs that the gates keep waiting, and until when) with the one it has, and
records a change as ``job.dispatch_held``. The hold is what wakes the job: the timer
looks at it again at ``held_until`` (``job_due_at``), and that command starts the runs
that may start then. Nothing is recorded per held run, so a hold costs the same for one
queued run as for a hundred thousand.
"""

from datetime import datetime

from events.types import JobDispatchHeld
from services.domain.pacing import (
    rate_frees_at,
    rate_room,
    started_in_window,
    window_open,
    window_opens_at,
)
from services.domain.results import RunEvent
from services.domain.state import Aggregate, JobState, RunState, RunStatus

# Starts chosen earlier in one dispatch pass, per (rate-key name, metadata value).
Taken = dict[tuple[str, str], int]


def start_room(job: JobState, now: datetime) -> int | None:
    """How many runs the gates let start at ``now`` (None: no gate limits it)."""
    spec = job.spec
    if spec is None:
        return None
    if spec.execution_window_cron and not window_open(spec.execution_window_cron,
                                                      spec.timezone, now):
        return 0
    if spec.rate_limit_max and spec.rate_limit_window_secs:
        return rate_room(job.rate, spec.rate_limit_max, spec.rate_limit_window_secs, now)
    return None


def wanted_hold(job: JobState, now: datetime) -> tuple[datetime | None, str | None]:
    """Until when and why the job's queued runs wait for a gate; (None, None) if they
    do not (none wait, or the gates have room)."""
    spec = job.spec
    if spec is None or job.deleted or not job.queued_count or start_room(job, now) != 0:
        return None, None
    window = spec.execution_window_cron
    if window and not window_open(window, spec.timezone, now):
        return window_opens_at(window, spec.timezone, now), "execution_window"
    assert spec.rate_limit_max and spec.rate_limit_window_secs
    return (rate_frees_at(job.rate, spec.rate_limit_max, spec.rate_limit_window_secs, now),
            "rate_limit")


def key_held_until(state: Aggregate, run: RunState, taken: Taken,
                   now: datetime) -> datetime | None:
    """When the first of the job's rate_limit_keys that holds ``run`` back has room again
    (None: none holds it). ``taken`` counts the starts chosen before it in this pass."""
    spec = state.job.spec
    if spec is None:
        return None
    for limit in spec.rate_limit_keys:
        value = run.metadata.get(limit.name)
        if value is None:
            continue
        pair = (limit.name, value)
        counter = state.rates.get(pair)
        if started_in_window(counter, limit.window_secs, now) + taken.get(pair, 0) >= limit.max:
            room = max(1, limit.max - taken.get(pair, 0))
            return rate_frees_at(counter, room, limit.window_secs, now) or now
    return None


def take(state: Aggregate, run: RunState, taken: Taken) -> None:
    """Count ``run``'s start under each rate key it has a value for."""
    assert state.job.spec is not None
    for limit in state.job.spec.rate_limit_keys:
        if (value := run.metadata.get(limit.name)) is not None:
            taken[(limit.name, value)] = taken.get((limit.name, value), 0) + 1


def hold_of(state: Aggregate, now: datetime) -> tuple[datetime | None, str | None]:
    """The hold the job should have after a command: a start gate's (``wanted_hold``),
    or, when every queued run the command loaded waits for its rate key while the job
    has room, until the first of those keys has room again (so the job is woken then)."""
    job, spec = state.job, state.job.spec
    hold = wanted_hold(job, now)
    if hold != (None, None) or spec is None or not spec.rate_limit_keys or job.deleted:
        return hold
    queued = [run for run in state.runs.values() if run.status is RunStatus.QUEUED]
    if not queued or (spec.max_concurrency is not None
                      and job.running_count >= spec.max_concurrency):
        return None, None
    ends = [key_held_until(state, run, {}, now) for run in queued]
    if any(end is None for end in ends):
        return None, None  # a run may start (or waits for its concurrency key only)
    return min(end for end in ends if end is not None), "rate_limit"


def rehold(state: Aggregate, now: datetime) -> list[RunEvent]:
    until, reason = hold_of(state, now)
    job = state.job
    if (until, reason) == (job.held_until, job.held_reason):
        return []
    return [(None, JobDispatchHeld(until=until, reason=reason))]  # type: ignore[arg-type]
