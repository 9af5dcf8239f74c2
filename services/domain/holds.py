"""waiting_reason: why a queued run is not running yet, from counters, at read time.

Pure, and fed by O(1) counters (the projection's running counts per job and per key),
so a run that becomes held or is let go writes no event. Reasons are checked in a fixed
order; the other pieces' gates (scheduled, dependency, execution_window, rate_limit)
slot in as further fields of ``Holds`` and further checks in ``waiting_reason``.
"""

from typing import Literal

import msgspec

# "scheduled" is a delayed run before its scheduled_at (read off the run itself).
WaitingReason = Literal["concurrency", "concurrency_key", "scheduled"]


class Holds(msgspec.Struct, frozen=True, kw_only=True):
    """What may hold a queued run: the job's limits and how many of its runs run now."""

    max_concurrency: int | None = None
    max_concurrency_per_key: int | None = None
    job_running: int = 0
    key_running: int = 0


def waiting_reason(status: str, concurrency_key: str | None,
                   holds: Holds) -> WaitingReason | None:
    """The first gate that holds a queued run, or None (not queued, or about to start)."""
    if status != "queued":
        return None
    if holds.max_concurrency is not None and holds.job_running >= holds.max_concurrency:
        return "concurrency"
    per_key = holds.max_concurrency_per_key
    if concurrency_key and per_key is not None and holds.key_running >= per_key:
        return "concurrency_key"
    return None
