"""Retry policy: a pure decision that returns a value."""

import hashlib
from datetime import datetime, timedelta

import msgspec

from events.types import AttemptFailure, JobSpec

# The longest an endpoint's Retry-After may push the next attempt back.
MAX_RETRY_AFTER_SECS = 86_400
# The longest any policy waits: an exponential delay of a late attempt would otherwise
# pass what a datetime can hold.
MAX_DELAY_SECS = 365 * 86_400


class RetryAt(msgspec.Struct, frozen=True):
    at: datetime


class GiveUp(msgspec.Struct, frozen=True):
    reason: str


def retry_decision(
    attempt: int, max_attempts: int, failure: AttemptFailure, spec: JobSpec, now: datetime,
    max_delay_secs: int | None = None, run_id: str = "",
) -> RetryAt | GiveUp:
    """When (if ever) the next attempt of a run is due, after attempt ``attempt`` failed.

    The policy's delay, capped at ``max_delay_secs`` (the trigger's) or else the job's
    retry_max_delay_secs, shortened by the job's jitter, and never sooner than the
    endpoint's Retry-After.
    """
    if not failure.retryable:
        return GiveUp("the failure is permanent")
    if attempt >= max_attempts:
        return GiveUp(f"all {max_attempts} attempts failed")
    delay = min(retry_delay_secs(attempt, spec), MAX_DELAY_SECS)
    cap = max_delay_secs if max_delay_secs is not None else spec.retry_max_delay_secs
    if cap is not None:
        delay = min(delay, float(cap))
    if spec.retry_jitter:
        delay *= 1.0 - jitter_fraction(run_id, attempt) / 2
    if failure.retry_after_secs is not None:
        delay = max(delay, min(failure.retry_after_secs, MAX_RETRY_AFTER_SECS))
    return RetryAt(now + timedelta(seconds=delay))


def retry_delay_secs(attempt: int, spec: JobSpec) -> float:
    """Delay before attempt ``attempt + 1``; the list's last entry repeats when it runs out."""
    delays = spec.retry_delays_secs or [0]
    match spec.retry_strategy:
        case "exponential":
            # Capped before it is computed: 2**attempt of a large attempt would overflow.
            return float(delays[0] * 2 ** min(attempt - 1, 40))
        case "custom":
            return float(delays[min(attempt - 1, len(delays) - 1)])
        case _:
            return float(delays[0])


def jitter_fraction(run_id: str, attempt: int) -> float:
    """A number in [0, 1) that looks random but is the same for a run's attempt: deciding
    a command again must yield the same retry time (the core has no random source)."""
    digest = hashlib.sha256(f"{run_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
