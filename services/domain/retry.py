"""Retry policy: a pure decision that returns a value."""

from datetime import datetime, timedelta

import msgspec

from events.types import AttemptFailure, JobSpec


class RetryAt(msgspec.Struct, frozen=True):
    at: datetime


class GiveUp(msgspec.Struct, frozen=True):
    reason: str


def retry_decision(
    attempt: int, max_attempts: int, failure: AttemptFailure, spec: JobSpec, now: datetime,
    max_delay_secs: int | None = None,
) -> RetryAt | GiveUp:
    """When (if ever) the next attempt of a run is due, after attempt ``attempt`` failed;
    the delay capped at ``max_delay_secs`` when one is given."""
    if not failure.retryable:
        return GiveUp("the failure is permanent")
    if attempt >= max_attempts:
        return GiveUp(f"all {max_attempts} attempts failed")
    delay = retry_delay_secs(attempt, spec)
    if max_delay_secs is not None:
        delay = min(delay, float(max_delay_secs))
    return RetryAt(now + timedelta(seconds=delay))


def retry_delay_secs(attempt: int, spec: JobSpec) -> float:
    """Delay before attempt ``attempt + 1``; the list's last entry repeats when it runs out."""
    delays = spec.retry_delays_secs or [0]
    match spec.retry_strategy:
        case "exponential":
            return float(delays[0] * 2 ** (attempt - 1))
        case "custom":
            return float(delays[min(attempt - 1, len(delays) - 1)])
        case _:
            return float(delays[0])
