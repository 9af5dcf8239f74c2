"""What the processor keeps in memory beside its tables: which queued run of each job
starts next, which runs a timer waits for, and which jobs a timer waits for (their next
cron tick).

Each is derived from records alone (``dispatch_order`` and ``timer_due_at`` of the runs,
``job_due_at`` of the jobs), so they need no changelog of their own: they are updated
from every record written and rebuilt from the tables after a rebalance. That keeps what
a command writes to the log independent of how many runs wait, and spares the timer a
scan of every job.
"""

import heapq
from collections.abc import Iterable
from datetime import datetime, timedelta

from services.domain import (
    JobState,
    RunState,
    RunStatus,
    dispatch_order,
    job_due_at,
    timer_due_at,
)

# A run the timer asked about and that is still due is asked about again after this long,
# and then less and less often: a timer command that keeps failing must not flood the log.
ASK_AGAIN = timedelta(seconds=2)
ASK_AGAIN_MAX = timedelta(seconds=300)

QueueKey = tuple[int, int]  # dispatch_order of a run


class QueueIndex:
    """Queued runs per job in dispatch order; a heap per job with lazy deletion."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[tuple[QueueKey, str]]] = {}
        # run id -> (job id, its key) for every run that is queued now
        self._queued: dict[str, tuple[str, QueueKey]] = {}

    def __len__(self) -> int:
        return len(self._queued)

    def update(self, run: RunState) -> None:
        if run.status is not RunStatus.QUEUED:
            self._queued.pop(run.run_id, None)  # its heap entry is dropped when met
            return
        entry = (run.job_id, dispatch_order(run))
        if self._queued.get(run.run_id) != entry:
            self._queued[run.run_id] = entry
            heapq.heappush(self._heaps.setdefault(run.job_id, []), (entry[1], run.run_id))

    def first(self, job_id: str, limit: int) -> list[str]:
        """The job's next ``limit`` queued runs, in dispatch order. Costs O(limit log n)."""
        heap = self._heaps.get(job_id)
        if heap is None:
            return []
        found: list[tuple[QueueKey, str]] = []
        while heap and len(found) < limit:
            key, run_id = heapq.heappop(heap)
            if self._queued.get(run_id) == (job_id, key) and (key, run_id) not in found:
                found.append((key, run_id))
        for item in found:
            heapq.heappush(heap, item)
        if not heap:
            del self._heaps[job_id]
        return [run_id for _, run_id in found]


class TimerIndex:
    """Runs a timer waits for, by the time it is due (a heap with lazy deletion)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, datetime, str, str]] = []  # ask at, due, run, job
        self._due: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._due)

    def update(self, run: RunState) -> None:
        due = timer_due_at(run)
        if due is None:
            self._due.pop(run.run_id, None)
        elif self._due.get(run.run_id) != due:
            self._due[run.run_id] = due
            heapq.heappush(self._heap, (due, due, run.run_id, run.job_id))

    def take_due(self, now: datetime, limit: int = 500) -> dict[str, list[str]]:
        """Runs due by ``now`` (at most ``limit``), by job. Each stays indexed and comes
        back later, less and less often, until its run record changes."""
        found: dict[str, list[str]] = {}
        taken = 0
        while self._heap and self._heap[0][0] <= now and taken < limit:
            ask_at, due, run_id, job_id = heapq.heappop(self._heap)
            if self._due.get(run_id) != due:
                continue  # the run moved on since this entry was made
            found.setdefault(job_id, []).append(run_id)
            taken += 1
            wait = min(max(ASK_AGAIN, (ask_at - due) * 2), ASK_AGAIN_MAX)
            heapq.heappush(self._heap, (now + wait, due, run_id, job_id))
        return found


class RunIndexes:
    """Both indexes, fed from every run record the processor stores."""

    def __init__(self) -> None:
        self.queue = QueueIndex()
        self.timers = TimerIndex()

    def update(self, run: RunState) -> None:
        self.queue.update(run)
        self.timers.update(run)

    def rebuild(self, runs: Iterable[RunState]) -> None:
        self.queue, self.timers = QueueIndex(), TimerIndex()
        for run in runs:
            self.update(run)


class JobTimerIndex:
    """Jobs a timer waits for (``job_due_at``: the next cron tick), by when; a heap with
    lazy deletion, like TimerIndex, and asked about again the same way while still due."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, datetime, str]] = []  # ask at, due, job
        self._due: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._due)

    def update(self, job: JobState) -> None:
        due = job_due_at(job)
        if due is None:
            self._due.pop(job.job_id, None)
        elif self._due.get(job.job_id) != due:
            self._due[job.job_id] = due
            heapq.heappush(self._heap, (due, due, job.job_id))

    def rebuild(self, jobs: Iterable[JobState]) -> None:
        self._heap, self._due = [], {}
        for job in jobs:
            self.update(job)

    def take_due(self, now: datetime, limit: int = 500) -> list[str]:
        """Jobs due by ``now`` (at most ``limit``). Each stays indexed and comes back
        later, less and less often, until its record changes."""
        found: list[str] = []
        while self._heap and self._heap[0][0] <= now and len(found) < limit:
            ask_at, due, job_id = heapq.heappop(self._heap)
            if self._due.get(job_id) != due:
                continue  # the job moved on since this entry was made
            found.append(job_id)
            wait = min(max(ASK_AGAIN, (ask_at - due) * 2), ASK_AGAIN_MAX)
            heapq.heappush(self._heap, (now + wait, due, job_id))
        return found
