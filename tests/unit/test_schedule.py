"""Cron arithmetic across daylight-saving changes (Europe/Paris: the clocks jump from
02:00 to 03:00 on the last Sunday of March and fall back from 03:00 to 02:00 on the last
Sunday of October; America/New_York the same at 02:00 in March and November)."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain.schedule import MISSED_COUNTED, catch_up, latest_tick, next_tick

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def ticks(cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    found: list[datetime] = []
    at = start
    while (tick := next_tick(cron, tz, at)) is not None and tick < end:
        found.append(tick)
        at = tick
    return found


# A day around each change, in UTC: 2024 and 2025, spring and autumn.
SPRING = [("2024-03-31", utc(2024, 3, 30, 12), utc(2024, 4, 1, 12)),
          ("2025-03-30", utc(2025, 3, 29, 12), utc(2025, 3, 31, 12))]
AUTUMN = [("2024-10-27", utc(2024, 10, 26, 12), utc(2024, 10, 28, 12)),
          ("2025-10-26", utc(2025, 10, 25, 12), utc(2025, 10, 27, 12))]


@pytest.mark.parametrize(("day", "start", "end"), SPRING)
def test_a_time_in_the_skipped_hour_runs_once_just_after_the_jump(
        day: str, start: datetime, end: datetime) -> None:
    found = ticks("30 2 * * *", PARIS, start, end)
    # The day before's 02:30 is before start; on the day 02:30 does not exist: 03:00 CEST
    # (01:00 UTC) is the first minute after the jump. The next day is 02:30 CEST again.
    jump = datetime.fromisoformat(f"{day}T01:00:00+00:00")
    assert found == [jump, jump + timedelta(hours=23, minutes=30)]


@pytest.mark.parametrize(("day", "start", "end"), AUTUMN)
def test_a_time_in_the_repeated_hour_runs_once_not_twice(
        day: str, start: datetime, end: datetime) -> None:
    found = ticks("30 2 * * *", PARIS, start, end)
    first = datetime.fromisoformat(f"{day}T00:30:00+00:00")  # 02:30 CEST, the first one
    assert found == [first, first + timedelta(hours=25)]  # then 02:30 CET the next day


@pytest.mark.parametrize(("day", "start", "end"), AUTUMN)
def test_from_inside_the_repeated_hour_the_passed_first_occurrence_is_not_answered(
        day: str, start: datetime, end: datetime) -> None:
    second_pass = datetime.fromisoformat(f"{day}T01:15:00+00:00")  # 02:15 CET
    tick = next_tick("30 2 * * *", PARIS, second_pass)
    assert tick == datetime.fromisoformat(f"{day}T01:30:00+00:00") + timedelta(days=1)


@pytest.mark.parametrize(("tz", "start", "short", "long"), [
    (PARIS, utc(2024, 3, 30, 23), 23, None), (PARIS, utc(2025, 3, 29, 23), 23, None),
    (PARIS, utc(2024, 10, 26, 22), None, 25), (PARIS, utc(2025, 10, 25, 22), None, 25),
    (NEW_YORK, utc(2024, 3, 10, 5), 23, None), (NEW_YORK, utc(2025, 11, 2, 4), None, 25),
])
def test_hourly_follows_real_time_across_the_change(
        tz: str, start: datetime, short: int | None, long: int | None) -> None:
    # Local midnight to local midnight: 23 hours in spring, 25 in autumn, one tick each.
    hours = short or long
    assert hours is not None
    found = ticks("0 * * * *", tz, start - timedelta(seconds=1), start + timedelta(hours=hours))
    assert len(found) == hours
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(found))


def test_next_tick_is_strictly_after_and_utc() -> None:
    at = utc(2026, 1, 1, 12, 0)
    assert next_tick("* * * * *", "UTC", at) == utc(2026, 1, 1, 12, 1)
    assert next_tick("* * * * *", "UTC", at + timedelta(microseconds=1)) == utc(2026, 1, 1, 12, 1)
    tick = next_tick("0 9 * * *", NEW_YORK, at)
    assert tick == utc(2026, 1, 1, 14) and tick.tzinfo is UTC


def test_latest_tick_is_at_or_before() -> None:
    assert latest_tick("*/5 * * * *", "UTC", utc(2026, 1, 1, 12, 5)) == utc(2026, 1, 1, 12, 5)
    assert latest_tick("*/5 * * * *", "UTC", utc(2026, 1, 1, 12, 9, 59, 999)) == \
        utc(2026, 1, 1, 12, 5)


def test_catch_up_fires_the_latest_and_counts_the_skipped() -> None:
    due = utc(2026, 1, 1, 12, 0)
    assert catch_up("* * * * *", "UTC", due, due + timedelta(seconds=30)) == (due, 0)
    assert catch_up("* * * * *", "UTC", due, utc(2026, 1, 1, 12, 10, 30)) == \
        (utc(2026, 1, 1, 12, 10), 10)


def test_catch_up_after_long_downtime_saturates_the_count() -> None:
    due = utc(2026, 1, 1)
    fire, missed = catch_up("* * * * *", "UTC", due, utc(2026, 1, 8, 0, 0, 30))
    assert (fire, missed) == (utc(2026, 1, 8), MISSED_COUNTED)


@settings(max_examples=200, deadline=None)
@given(when=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31),
                         timezones=st.just(UTC)),
       cron=st.sampled_from(["30 2 * * *", "0 * * * *", "*/7 * * * *", "15 1-3 * * 0"]),
       tz=st.sampled_from([PARIS, NEW_YORK, "UTC"]))
def test_latest_and_next_agree(when: datetime, cron: str, tz: str) -> None:
    latest = latest_tick(cron, tz, when)
    assert latest is not None and latest <= when
    following = next_tick(cron, tz, latest)
    assert following is not None and following > when


def test_a_schedule_that_cannot_be_read_or_never_fires_has_no_tick() -> None:
    at = utc(2026, 1, 1)
    assert next_tick("not cron", "UTC", at) is None
    assert next_tick("* * * * *", "Mars/Olympus_Mons", at) is None
