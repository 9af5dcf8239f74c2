"""waiting_reason: why a queued run is not running yet, from counters, at read time.

Pure, and fed by O(1) data: the projection's running counts per job and per key, and
the job's hold by a start gate (``job.dispatch_held``, recorded once per hold, not per
run), so a run that becomes held or is let go writes no event of its own. Reasons are
checked in a fixed order: the job-wide start gates first (execution_window, rate_limit:
nothing of the job starts while one is closed), then concurrency, then concurrency_key.
("scheduled" is a delayed run's, read off the run; "dependency" comes with
dependencies.)
"""

from datetime import datetime
from typing import Literal

import msgspec

# "scheduled" is a delayed run before its scheduled_at (read off the run itself).
WaitingReason = Literal["execution_window", "rate_limit", "concurrency", "concurrency_key",
                        "scheduled"]


class Holds(msgspec.Struct, frozen=True, kw_only=True):
    """What may hold a queued run: the job's limits and how many of its runs run now."""

    max_concurrency: int | None = None
    max_concurrency_per_key: int | None = None
    job_running: int = 0
    key_running: int = 0
    # The job's hold by a start gate, if any, and until when (None: no end known).
    held_reason: str | None = None
    held_until: datetime | None = None


def waiting_reason(status: str, concurrency_key: str | None, holds: Holds,
                   now: datetime) -> WaitingReason | None:
    """The first gate that holds a queued run, or None (not queued, or about to start)."""
    if status != "queued":
        return None
    if holds.held_reason in ("execution_window", "rate_limit") and (
            holds.held_until is None or holds.held_until > now):
        return holds.held_reason  # type: ignore[return-value]
    if holds.max_concurrency is not None and holds.job_running >= holds.max_concurrency:
        return "concurrency"
    per_key = holds.max_concurrency_per_key
    if concurrency_key and per_key is not None and holds.key_running >= per_key:
        return "concurrency_key"
    return None
