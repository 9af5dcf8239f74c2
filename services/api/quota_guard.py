"""The quota check before every trigger (the decision is
``services.domain.quotas.refusal``; this gathers what it needs).

The counts come from the read model (``project_waiting``, ``project_days``), which lags
the processor by a moment, so the API adds what it has sent and not yet seen there: a
reservation per admitted run id. The counts and which reserved runs the read model
already holds are read in one statement (a run's row and its counts are written in one
transaction), so each run counts exactly once: not at all before it is admitted, as a
reservation until its row exists, in the counts after. A per-project lock is held while
counting and reserving: 50 triggers at once against room for 5 make exactly 5 runs.
Reservations are dropped once the run is visible, refused, or past the wait bound. They
are this API process's: with several API processes, each adds only its own (see the
README).
"""

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.queries import project_quotas_and_usage, project_usage
from services.api.cache import TtlCache
from services.api.visibility import ProjectionWatcher as Watcher
from services.domain.quotas import QuotaExceeded, Quotas, Usage, refusal


@dataclass
class Admission:
    """Runs admitted for a project and reserved until they are visible."""

    project_id: str
    run_ids: list[str]
    released: bool = False

    @property
    def runs(self) -> int:
        return len(self.run_ids)


@dataclass
class QuotaGuard:
    # The quotas as last read, per project (Quotas(): none set), for a few seconds: a
    # change takes effect within that bound (at once on the API that made it).
    quotas: TtlCache[Quotas] = field(default_factory=TtlCache)
    # project -> the admissions it holds, by id(): their run ids are reserved.
    reserved: dict[str, dict[int, Admission]] = field(default_factory=dict)
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

    async def admit(self, engine: AsyncEngine, project_id: str, run_ids: list[str],
                    ) -> tuple[Admission | None, list[QuotaExceeded | None]]:
        """Admit the runs one by one: for each, None (admitted) or why not. The admitted
        ones are reserved (release the Admission once they are visible)."""
        quotas = await self._quotas(engine, project_id)
        if quotas == Quotas():
            return None, [None] * len(run_ids)
        async with self.locks.setdefault(project_id, asyncio.Lock()):
            now = datetime.now(UTC)
            held = self.reserved.setdefault(project_id, {})
            reserved = [rid for admission in held.values() for rid in admission.run_ids]
            usage, visible = await project_usage(engine, project_id, today(now), reserved)
            pending = len(reserved) - visible
            answers: list[QuotaExceeded | None] = []
            admitted: list[str] = []
            for run_id in run_ids:
                taken = pending + len(admitted)
                counted = Usage(queued_runs=usage.queued_runs + taken,
                                runs_today=usage.runs_today + taken)
                why = refusal(quotas, counted, 1, now)
                answers.append(why)
                if why is None:
                    admitted.append(run_id)
            admission = Admission(project_id, admitted)
            if admitted:
                held[id(admission)] = admission
        return admission, answers

    async def release(self, admission: Admission | None) -> None:
        """Drop a reservation (once: a second release of it does nothing)."""
        if admission is None or not admission.runs or admission.released:
            return
        admission.released = True
        async with self.locks.setdefault(admission.project_id, asyncio.Lock()):
            held = self.reserved.get(admission.project_id, {})
            held.pop(id(admission), None)
            if not held:
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
