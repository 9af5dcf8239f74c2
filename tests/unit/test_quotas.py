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


async def test_concurrent_admissions_count_each_others_reservations() -> None:
    # The read model shows 2 waiting runs and never catches up during the test: the
    # reservations alone must keep 50 concurrent triggers within max_queued_runs=5.
    async def read(engine: Any, project_id: str, day: str) -> tuple[Quotas, Usage]:
        await asyncio.sleep(0.001)
        return Quotas(max_queued_runs=5), Usage(queued_runs=2)

    original = quota_guard.project_quotas_and_usage
    quota_guard.project_quotas_and_usage = read  # type: ignore[assignment]
    try:
        guard = QuotaGuard()
        answers = await asyncio.gather(*(guard.admit(cast(Any, None), "p", 1)
                                         for _ in range(50)))
        admitted = [a for a, (why,) in answers if why is None]
        assert len(admitted) == 3 and guard.reserved["p"] == 3
        # Released once each (a second release does nothing), the count goes back.
        for admission in admitted:
            await guard.release(admission)
            await guard.release(admission)
        assert "p" not in guard.reserved
        # A bulk of 4 is answered item by item: three fit.
        _, bulk = await guard.admit(cast(Any, None), "p", 4)
        assert [why is None for why in bulk] == [True, True, True, False]
    finally:
        quota_guard.project_quotas_and_usage = original  # type: ignore[assignment]


async def test_a_reservation_goes_once_the_read_model_shows_the_run() -> None:
    class Watcher:
        def __init__(self) -> None:
            self.shown = asyncio.Event()

        async def wait_for(self, job_id: str, seq: int, timeout: float) -> bool:
            await asyncio.wait_for(self.shown.wait(), timeout)
            return True

    guard, watcher = QuotaGuard(), Watcher()
    guard.reserved["p"] = 1
    admission = quota_guard.Admission("p", 1)
    guard.release_once_visible(admission, cast(Any, watcher), "j", 7, 5.0)
    await asyncio.sleep(0.01)
    assert guard.reserved == {"p": 1}  # not visible yet: still counted
    watcher.shown.set()
    await asyncio.sleep(0.01)
    assert guard.reserved == {} and admission.released
