"""Project quotas: the pure decision, the day arithmetic, and the API's reservations."""

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from services.api import quota_guard
from services.api.quota_guard import QuotaGuard
from services.domain.quotas import Quotas, Usage, refusal, secs_to_midnight

NOW = datetime(2026, 11, 24, 23, 59, 30, tzinfo=UTC)


def test_a_run_fits_until_a_quota_is_reached() -> None:
    quotas = Quotas(max_queued_runs=5, max_runs_per_day=100)
    assert refusal(quotas, Usage(queued_runs=4, runs_today=99), 1, NOW) is None
    full = refusal(quotas, Usage(queued_runs=5, runs_today=10), 1, NOW)
    assert full is not None and (full.quota, full.limit, full.retry_after_secs) == (
        "max_queued_runs", 5, 1)
    day = refusal(quotas, Usage(queued_runs=0, runs_today=100), 1, NOW)
    assert day is not None and day.quota == "max_runs_per_day"
    assert day.retry_after_secs == 30 and "max_runs_per_day=100" in day.message
    assert refusal(Quotas(), Usage(queued_runs=10**9, runs_today=10**9), 1, NOW) is None


def test_the_next_day_starts_at_utc_midnight() -> None:
    assert secs_to_midnight(NOW) == 30
    assert secs_to_midnight(datetime(2026, 11, 24, 0, 0, tzinfo=UTC)) == 86_400
    assert secs_to_midnight(datetime(2026, 11, 24, 23, 59, 59, 500_000, tzinfo=UTC)) == 1


def quotas_of(most: int) -> Any:
    async def read(engine: Any, project_id: str, day: str) -> tuple[Quotas, Usage]:
        return Quotas(max_queued_runs=most), Usage()
    return read


async def test_concurrent_admissions_count_each_others_reservations() -> None:
    # The read model shows 2 waiting runs and never catches up during the test: the
    # reservations alone must keep 50 concurrent triggers within max_queued_runs=5.
    async def usage(engine: Any, project_id: str, day: str,
                    reserved: list[str]) -> tuple[Usage, int]:
        await asyncio.sleep(0.001)
        return Usage(queued_runs=2), 0

    originals = quota_guard.project_quotas_and_usage, quota_guard.project_usage
    quota_guard.project_quotas_and_usage = quotas_of(5)
    quota_guard.project_usage = usage  # type: ignore[assignment]
    try:
        guard = QuotaGuard()
        answers = await asyncio.gather(*(guard.admit(cast(Any, None), "p", [f"r{i}"])
                                         for i in range(50)))
        admitted = [a for a, (why,) in answers if why is None]
        assert len(admitted) == 3 and sum(a.runs for a in guard.reserved["p"].values()) == 3
        # Released once each (a second release does nothing), the count goes back.
        for admission in admitted:
            assert admission is not None
            await guard.release(admission)
            await guard.release(admission)
        assert "p" not in guard.reserved
        # A bulk of 4 is answered item by item: three fit.
        _, bulk = await guard.admit(cast(Any, None), "p", ["b1", "b2", "b3", "b4"])
        assert [why is None for why in bulk] == [True, True, True, False]
    finally:
        quota_guard.project_quotas_and_usage, quota_guard.project_usage = originals


async def test_a_reserved_run_the_read_model_shows_counts_once() -> None:
    # Two runs reserved; the read model already has one of them (its row and its count
    # are written together). Counting it in both would refuse the fifth run early.
    shown: set[str] = set()

    async def usage(engine: Any, project_id: str, day: str,
                    reserved: list[str]) -> tuple[Usage, int]:
        visible = [r for r in reserved if r in shown]
        return Usage(queued_runs=2 + len(visible)), len(visible)

    originals = quota_guard.project_quotas_and_usage, quota_guard.project_usage
    quota_guard.project_quotas_and_usage = quotas_of(5)
    quota_guard.project_usage = usage  # type: ignore[assignment]
    try:
        guard = QuotaGuard()
        first, _ = await guard.admit(cast(Any, None), "p", ["r1", "r2"])
        assert first is not None and first.runs == 2
        shown.add("r1")  # visible, its reservation not yet dropped
        _, answers = await guard.admit(cast(Any, None), "p", ["r3", "r4"])
        assert [why is None for why in answers] == [True, False]  # 2 + r1 + r2 + r3 = 5
    finally:
        quota_guard.project_quotas_and_usage, quota_guard.project_usage = originals


async def test_a_reservation_goes_once_the_read_model_shows_the_run() -> None:
    class Watcher:
        def __init__(self) -> None:
            self.shown = asyncio.Event()

        async def wait_for(self, job_id: str, seq: int, timeout: float) -> bool:
            await asyncio.wait_for(self.shown.wait(), timeout)
            return True

    guard, watcher = QuotaGuard(), Watcher()
    admission = quota_guard.Admission("p", ["r1"])
    guard.reserved["p"] = {id(admission): admission}
    guard.release_once_visible(admission, cast(Any, watcher), "j", 7, 5.0)
    await asyncio.sleep(0.01)
    assert guard.reserved["p"] == {id(admission): admission}  # not visible yet: counted
    watcher.shown.set()
    await asyncio.sleep(0.01)
    assert guard.reserved == {} and admission.released
