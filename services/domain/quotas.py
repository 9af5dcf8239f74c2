"""Project quotas: whether a project may take ``n`` more runs. Pure.

The API decides it, not the processor: a project's runs are spread over its jobs, and
each job is decided by the processor that owns its partition, so no processor sees a
project's total. The API reads the project's counts from the read model and adds the
runs it has sent whose effect is not visible there yet (its reservations).
"""

from datetime import UTC, datetime, timedelta

import msgspec


class Quotas(msgspec.Struct, frozen=True, kw_only=True):
    max_queued_runs: int | None = None
    max_runs_per_day: int | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """What counts against the quotas: runs waiting to start (queued or delayed), and
    runs made on the current UTC day (by triggers, bulk and cron alike)."""

    queued_runs: int = 0
    runs_today: int = 0


class QuotaExceeded(msgspec.Struct, frozen=True, kw_only=True):
    quota: str
    limit: int
    current: int
    retry_after_secs: int

    @property
    def message(self) -> str:
        return (f"the project's quota {self.quota}={self.limit} is reached "
                f"({self.current} counted); try again in {self.retry_after_secs} s")


def secs_to_midnight(now: datetime) -> int:
    """Whole seconds until the next UTC day starts (at least 1)."""
    tomorrow = (now.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                                 microsecond=0)
    return max(1, int((tomorrow - now).total_seconds() + 0.999))


def refusal(quotas: Quotas, usage: Usage, n: int, now: datetime) -> QuotaExceeded | None:
    """Why ``n`` more runs would break a quota, or None if they fit."""
    if quotas.max_runs_per_day is not None and usage.runs_today + n > quotas.max_runs_per_day:
        return QuotaExceeded(quota="max_runs_per_day", limit=quotas.max_runs_per_day,
                             current=usage.runs_today, retry_after_secs=secs_to_midnight(now))
    if quotas.max_queued_runs is not None and usage.queued_runs + n > quotas.max_queued_runs:
        # Waiting runs leave the queue as they start: worth trying again soon.
        return QuotaExceeded(quota="max_queued_runs", limit=quotas.max_queued_runs,
                             current=usage.queued_runs, retry_after_secs=1)
    return None
