"""The quota check before every trigger (the decision is
``services.domain.quotas.refusal``; this gathers what it needs).

The counts come from the read model (``project_waiting``, ``project_days``), which lags
the processor by a moment, so the API adds what it has sent and not yet seen there: a
reservation per admitted run, dropped once the run is visible (or refused, or after the
wait bound). A per-project lock is held while counting and reserving, and a reservation
is dropped under it too, so that concurrent triggers are each counted at least once:
50 at once against room for 5 make 5 runs. The reservations are this API process's:
with several API processes, each adds only its own (see the README).
"""

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.queries import project_quotas_and_usage
from services.api.cache import TtlCache
from services.api.visibility import ProjectionWatcher as Watcher
from services.domain.quotas import QuotaExceeded, Quotas, Usage, refusal


@dataclass
class Admission:
    """Runs admitted for a project and reserved until they are visible."""

    project_id: str
    runs: int
    released: bool = False


@dataclass
class QuotaGuard:
    # The quotas as last read, per project (Quotas(): none set), for a few seconds: a
    # change takes effect within that bound (at once on the API that made it).
    quotas: TtlCache[Quotas] = field(default_factory=TtlCache)
    reserved: dict[str, int] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Releases waiting for visibility (kept so they are not collected while they wait).
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _quotas(self, engine: AsyncEngine, project_id: str) -> Quotas:
        found = self.quotas.get((project_id, ""))
        if found is None:
            read, _ = await project_quotas_and_usage(engine, project_id, today())
            found = read or Quotas()
            self.quotas.put((project_id, ""), found)
        return found

    async def admit(self, engine: AsyncEngine, project_id: str,
                    wanted: int) -> tuple[Admission | None, list[QuotaExceeded | None]]:
        """Admit up to ``wanted`` runs one by one: for each, None (admitted) or why not.
        The admitted ones are reserved (release the Admission once they are visible)."""
        quotas = await self._quotas(engine, project_id)
        if quotas == Quotas():
            return None, [None] * wanted
        async with self.locks.setdefault(project_id, asyncio.Lock()):
            now = datetime.now(UTC)
            _, usage = await project_quotas_and_usage(engine, project_id, today(now))
            pending = self.reserved.get(project_id, 0)
            answers: list[QuotaExceeded | None] = []
            taken = 0
            for _ in range(wanted):
                counted = Usage(queued_runs=usage.queued_runs + pending + taken,
                                runs_today=usage.runs_today + pending + taken)
                why = refusal(quotas, counted, 1, now)
                answers.append(why)
                taken += why is None
            self.reserved[project_id] = pending + taken
        admission = Admission(project_id, taken)
        return admission, answers

    async def release(self, admission: Admission | None) -> None:
        """Drop a reservation (once: a second release of it does nothing)."""
        if admission is None or not admission.runs or admission.released:
            return
        admission.released = True
        async with self.locks.setdefault(admission.project_id, asyncio.Lock()):
            left = self.reserved.get(admission.project_id, 0) - admission.runs
            if left > 0:
                self.reserved[admission.project_id] = left
            else:
                self.reserved.pop(admission.project_id, None)

    def release_once_visible(self, admission: Admission | None, watcher: Watcher, job_id: str,
                             seq: int, bound: float) -> None:
        """Drop the reservation as soon as the read model shows the job at ``seq`` (the
        run counts there then), within ``bound`` seconds; ``release_later`` covers the
        rest."""
        if admission is None or not admission.runs:
            return

        async def when_visible() -> None:
            if await watcher.wait_for(job_id, seq, bound):
                await self.release(admission)

        task = asyncio.get_running_loop().create_task(when_visible())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def release_later(self, admission: Admission | None, delay: float) -> None:
        """Drop the reservation after ``delay`` seconds at the latest (the wait bound: a
        run not visible by then shows in the read model's count soon after, and a
        request that failed must not hold its reservation for ever)."""
        if admission is None or not admission.runs:
            return
        loop = asyncio.get_running_loop()
        loop.call_later(delay, lambda: loop.create_task(self.release(admission)))


def today(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).date().isoformat()
