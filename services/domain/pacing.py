"""When a job's runs may start: its execution window and its rate limit. Pure.

Execution window: ``execution_window_cron`` names the minutes in which runs may start,
read in the job's timezone (``* 9-17 * * 1-5``: weekdays 09:00-17:59 local). Outside
them queued runs wait; the job is woken at the next matching minute.

Rate limit: at most ``rate_limit_max`` starts in any ``rate_limit_window_secs``. The job
keeps a ``RateCounter``: the starts of the last window counted in at most
``BUCKETS + 1`` buckets of window/BUCKETS each, so its record stays small whatever the
limit (an exact log of 100,000 start times would not). A bucket counts while any part of
it lies inside the window, so the count never misses a start and the limit is never
exceeded; the price is that a start leaves the count up to one bucket late.
"""

from datetime import UTC, datetime, timedelta

import msgspec

from services.domain.schedule import next_tick

BUCKETS = 32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _at(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


class RateCounter(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Starts per bucket: ``buckets`` holds (bucket number, starts), oldest first, where
    bucket n covers [n * width_ms, (n + 1) * width_ms) in epoch milliseconds."""

    width_ms: int
    buckets: list[tuple[int, int]] = msgspec.field(default_factory=list)


def bucket_width_ms(window_secs: int) -> int:
    return max(1, window_secs * 1000 // BUCKETS)


def _live(counter: RateCounter, window_secs: int, now: datetime) -> list[tuple[int, int]]:
    """The buckets with any part inside the window that ends at ``now``."""
    start = _ms(now) - window_secs * 1000
    return [(n, c) for n, c in counter.buckets if (n + 1) * counter.width_ms > start]


def started_in_window(counter: RateCounter | None, window_secs: int, now: datetime) -> int:
    """Starts counted in the window that ends at ``now`` (never fewer than there were)."""
    return 0 if counter is None else sum(c for _, c in _live(counter, window_secs, now))


def with_start(counter: RateCounter | None, window_secs: int, now: datetime) -> RateCounter:
    """The counter once a run started at ``now``. If the window was changed since the
    counter was made, what it still counts is carried over into the current bucket
    (as if those starts happened now: later than they did, never earlier)."""
    width = bucket_width_ms(window_secs)
    carried = 0
    if counter is not None and counter.width_ms != width:
        carried, counter = started_in_window(counter, window_secs, now), None
    buckets = [] if counter is None else _live(counter, window_secs, now)
    current = _ms(now) // width
    if buckets and buckets[-1][0] == current:
        buckets[-1] = (current, buckets[-1][1] + 1 + carried)
    else:
        buckets.append((current, 1 + carried))
    return RateCounter(width_ms=width, buckets=buckets)


def rate_room(counter: RateCounter | None, limit: int, window_secs: int,
              now: datetime) -> int:
    return max(0, limit - started_in_window(counter, window_secs, now))


def rate_frees_at(counter: RateCounter | None, limit: int, window_secs: int,
                  now: datetime) -> datetime | None:
    """When the count falls below ``limit`` again (None: it is below it now): the end of
    the window that still counts the bucket whose leaving brings it below."""
    if counter is None:
        return None
    live = _live(counter, window_secs, now)
    count = sum(c for _, c in live)
    if count < limit:
        return None
    for bucket, starts in live:
        count -= starts
        if count < limit:
            return _at((bucket + 1) * counter.width_ms + window_secs * 1000)
    raise AssertionError("a positive limit is reached by removing every bucket")


def window_open(cron: str, timezone: str, now: datetime) -> bool:
    """Whether the minute ``now`` is in matches the window's cron expression."""
    minute = now.replace(second=0, microsecond=0)
    return next_tick(cron, timezone, minute - timedelta(microseconds=1)) == minute


def window_opens_at(cron: str, timezone: str, now: datetime) -> datetime | None:
    """The next minute the window is open, after ``now`` (None: never, or unreadable)."""
    return next_tick(cron, timezone, now)
