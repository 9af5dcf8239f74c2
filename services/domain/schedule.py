"""Cron arithmetic: when a job's schedule ticks next, and which ticks a late timer missed.

Pure functions of (cron, timezone, an instant). They use cronsim, a small maintained pure
library (no I/O, no clock, no global state): a deliberate exception to the core's
"standard library only" habit, because cron's day-of-month/day-of-week rules and its
daylight-saving quirks are easy to get subtly wrong, and cronsim is also what the API
validates ``cron`` with, so what is accepted is exactly what runs.

Daylight saving, as Debian cron runs it (cronsim follows it for five-field expressions
with a fixed minute and hour):

- a fixed time in the hour that is skipped (02:30 in Europe/Paris on a spring-forward
  day) runs once, just after the jump (03:00 local);
- a fixed time in the hour that repeats (02:30 on a fall-back day) runs once, at its
  first occurrence (summer time);
- schedules with a wildcard minute or hour (``0 * * * *``, ``*/15 * * * *``) follow
  real time: an hourly job runs every hour that passes, so 23 times on the short day and
  25 times on the long one.

All instants in and out are timezone-aware; results are in UTC.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# The most missed ticks counted one by one after a timer was late (downtime); past it
# the latest one is found directly and ``missed`` says "at least this many". Counting
# costs a few microseconds a tick.
MISSED_COUNTED = 1000


def next_tick(cron: str, timezone: str, after: datetime) -> datetime | None:
    """The schedule's first tick strictly after ``after``, in UTC; None if it has none
    within cronsim's horizon (50 years), or if the expression or zone cannot be read (the
    API refuses those; a stored one that this build cannot read must not make every
    command of its job fail: the job just does not tick, with ``next_tick_at`` null)."""
    try:
        ticks = CronSim(cron, after.astimezone(ZoneInfo(timezone)))
    except (CronSimError, ZoneInfoNotFoundError, ValueError):
        return None
    try:
        while True:
            tick = next(ticks).astimezone(UTC)
            # cronsim walks fixed-time schedules in local wall time, so from inside a
            # repeated hour it can answer the hour's first occurrence, which lies before
            # ``after``: that tick has passed, take the next one.
            if tick > after:
                return tick
    except StopIteration:
        return None


def latest_tick(cron: str, timezone: str, at_or_before: datetime) -> datetime | None:
    """The schedule's last tick at or before ``at_or_before``, in UTC."""
    whole = at_or_before.replace(microsecond=0)
    local = (whole + timedelta(seconds=1)).astimezone(ZoneInfo(timezone))
    ticks = CronSim(cron, local, reverse=True)
    try:
        while True:
            tick = next(ticks).astimezone(UTC)
            if tick <= at_or_before:
                return tick
    except StopIteration:
        return None


def catch_up(cron: str, timezone: str, due: datetime, now: datetime) -> tuple[datetime, int]:
    """The tick to fire when the tick ``due`` is acted on at ``now`` (``due <= now``): the
    latest tick at or before ``now``, and how many earlier ones (from ``due`` on) are
    skipped. At most ``MISSED_COUNTED`` are counted: the count saturates there."""
    fire, missed = due, 0
    while missed < MISSED_COUNTED:
        following = next_tick(cron, timezone, fire)
        if following is None or following > now:
            return fire, missed
        fire, missed = following, missed + 1
    latest = latest_tick(cron, timezone, now)
    return (fire if latest is None or latest < fire else latest), missed
