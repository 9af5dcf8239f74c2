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

from sortedcontainers import SortedList

from services.domain import (
    JobState,
    KeyState,
    RunState,
    RunStatus,
    dispatch_order,
    job_due_at,
    lane_of,
    timer_due_at,
)

# A run the timer asked about and that is still due is asked about again after this long,
# and then less and less often: a timer command that keeps failing must not flood the log.
ASK_AGAIN = timedelta(seconds=2)
ASK_AGAIN_MAX = timedelta(seconds=300)

QueueKey = tuple[int, int, int]  # dispatch_order of a run
Entry = tuple[QueueKey, str]  # a run in its lane: (its order, its id)


class QueueIndex:
    """Queued runs per job, in one lane per concurrency key, each in dispatch order.

    ``first`` merges the lanes that have room: a key at its ``max_concurrency_per_key``
    is left out without looking at its runs, so a busy key costs nothing to the others
    (no head-of-line blocking). Room comes from the key records (``update_key``), which
    the domain keeps; the index holds no state of its own beyond what records give it.
    """

    def __init__(self) -> None:
        # job -> key -> its queued runs, sorted by dispatch order
        self._lanes: dict[str, dict[str, SortedList]] = {}
        # job -> the lanes with queued runs and room, by the order of their first run
        self._ready: dict[str, SortedList] = {}
        self._ready_entry: dict[tuple[str, str], tuple[QueueKey, str]] = {}
        self._queued: dict[str, tuple[str, str, QueueKey]] = {}  # run -> job, key, order
        self._running: dict[tuple[str, str], int] = {}  # (job, key) -> runs running
        self._per_key: dict[str, int | None] = {}  # the limit room was last computed for

    def __len__(self) -> int:
        return len(self._queued)

    def update(self, run: RunState) -> None:
        old = self._queued.get(run.run_id)
        new = ((run.job_id, lane_of(run), dispatch_order(run))
               if run.status is RunStatus.QUEUED else None)
        if old == new:
            return
        if old is not None:
            job_id, key, order = old
            del self._queued[run.run_id]
            lane = self._lanes[job_id][key]
            lane.discard((order, run.run_id))
            if not lane:
                del self._lanes[job_id][key]
                if not self._lanes[job_id]:
                    del self._lanes[job_id]
            self._refresh(job_id, key)
        if new is not None:
            job_id, key, order = new
            self._queued[run.run_id] = new
            lanes = self._lanes.setdefault(job_id, {})
            lanes.setdefault(key, SortedList()).add((order, run.run_id))
            self._refresh(job_id, key)

    def update_key(self, key: KeyState) -> None:
        """A key's record changed: its room may have too (a deleted record: pass it with
        zero counts)."""
        slot = (key.job_id, key.key)
        if key.running:
            self._running[slot] = key.running
        else:
            self._running.pop(slot, None)
        self._refresh(key.job_id, key.key)

    def _room(self, job_id: str, key: str) -> int | None:
        """How many more runs of the key may start (None: no limit)."""
        limit = self._per_key.get(job_id)
        if limit is None or not key:
            return None
        return limit - self._running.get((job_id, key), 0)

    def _refresh(self, job_id: str, key: str) -> None:
        """Put the lane's entry in ``ready`` right: there iff it has runs and room."""
        ready = self._ready.setdefault(job_id, SortedList())
        if (entry := self._ready_entry.pop((job_id, key), None)) is not None:
            ready.discard(entry)
        lane = self._lanes.get(job_id, {}).get(key)
        room = self._room(job_id, key)
        if lane and (room is None or room > 0):
            entry = (lane[0][0], key)
            ready.add(entry)
            self._ready_entry[(job_id, key)] = entry
        if not ready:
            del self._ready[job_id]

    def _limit_is(self, job_id: str, per_key: int | None) -> None:
        """Recompute which lanes have room when the job's per-key limit changed (rare: a
        new version of the job); O(keys of the job)."""
        if self._per_key.get(job_id) == per_key:
            return
        if per_key is None:
            self._per_key.pop(job_id, None)
        else:
            self._per_key[job_id] = per_key
        for key in list(self._lanes.get(job_id, {})):
            self._refresh(job_id, key)

    def first(self, job_id: str, limit: int, per_key: int | None = None) -> list[str]:
        """The job's next ``limit`` startable runs in dispatch order, at most a key's room
        from each key. A k-way merge over the lanes with room: O(limit log n)."""
        self._limit_is(job_id, per_key)
        ready, lanes = self._ready.get(job_id), self._lanes.get(job_id, {})
        if not ready or limit <= 0:
            return []
        pending = iter(ready)  # lanes not yet in the merge, by their first run
        merge: list[tuple[Entry, str, int]] = []  # (run, its key, its index in the lane)

        def next_lane() -> None:
            for _, key in pending:
                heapq.heappush(merge, (lanes[key][0], key, 0))
                return

        next_lane()
        found: list[str] = []
        taken: dict[str, int] = {}
        while merge and len(found) < limit:
            (_, run_id), key, index = heapq.heappop(merge)
            found.append(run_id)
            taken[key] = taken.get(key, 0) + 1
            if index == 0:  # every lane still pending starts at or after this run
                next_lane()
            room, lane = self._room(job_id, key), lanes[key]
            if (room is None or taken[key] < room) and index + 1 < len(lane):
                heapq.heappush(merge, (lane[index + 1], key, index + 1))
        return found

    def lane(self, job_id: str, key: str, limit: int) -> list[str]:
        """The first ``limit`` queued runs of one key, room or not."""
        lane = self._lanes.get(job_id, {}).get(key)
        return [] if lane is None else [run_id for _, run_id in lane[:limit]]


class _DueHeap:
    """Ids by the time they are due; a heap with lazy deletion. An id taken while still
    due stays and comes back later, less and less often, until its due time changes: a
    command that keeps failing must not flood the log. Each id carries a tag (its job)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, datetime, str, str]] = []  # ask at, due, id, tag
        self._due: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._due)

    def set(self, key: str, due: datetime | None, tag: str) -> None:
        if due is None:
            self._due.pop(key, None)
        elif self._due.get(key) != due:
            self._due[key] = due
            heapq.heappush(self._heap, (due, due, key, tag))

    def take(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """The ids (with their tags) due by ``now``, at most ``limit``."""
        found: list[tuple[str, str]] = []
        while self._heap and self._heap[0][0] <= now and len(found) < limit:
            ask_at, due, key, tag = heapq.heappop(self._heap)
            if self._due.get(key) != due:
                continue  # it moved on since this entry was made
            found.append((key, tag))
            wait = min(max(ASK_AGAIN, (ask_at - due) * 2), ASK_AGAIN_MAX)
            heapq.heappush(self._heap, (now + wait, due, key, tag))
        return found


class TimerIndex:
    """Runs a timer waits for, by the time it is due."""

    def __init__(self) -> None:
        self._due = _DueHeap()

    def __len__(self) -> int:
        return len(self._due)

    def update(self, run: RunState) -> None:
        self._due.set(run.run_id, timer_due_at(run), run.job_id)

    def take_due(self, now: datetime, limit: int = 500) -> dict[str, list[str]]:
        """Runs due by ``now`` (at most ``limit``), by job. Each stays indexed and comes
        back later, less and less often, until its run record changes."""
        found: dict[str, list[str]] = {}
        for run_id, job_id in self._due.take(now, limit):
            found.setdefault(job_id, []).append(run_id)
        return found


class WaitingIndex:
    """Each job's waiting runs (queued or delayed) by when they were born: what a bulk
    cancel walks, a chunk at a time, from where it got to. A run's job and birth never
    change, so its entry is known from the run itself: no map back from runs to entries
    (which cost a hundred bytes per queued run)."""

    def __init__(self) -> None:
        self._by_job: dict[str, SortedList] = {}

    def update(self, run: RunState) -> None:
        entry = (run.born, run.run_id)
        entries = self._by_job.get(run.job_id)
        if run.status in (RunStatus.QUEUED, RunStatus.DELAYED):
            if entries is None:
                self._by_job[run.job_id] = SortedList([entry])
            elif entry not in entries:
                entries.add(entry)
        elif entries is not None:
            entries.discard(entry)
            if not entries:
                del self._by_job[run.job_id]

    def after(self, job_id: str, born: int, limit: int) -> list[str]:
        """The first ``limit`` waiting runs of the job born after ``born``."""
        entries = self._by_job.get(job_id)
        if entries is None:
            return []
        start = entries.bisect_right((born, "\uffff"))
        return [run_id for _, run_id in entries[start:start + limit]]


class RunIndexes:
    """The indexes, fed from every run record the processor stores."""

    def __init__(self) -> None:
        self.queue = QueueIndex()
        self.timers = TimerIndex()
        self.waiting = WaitingIndex()

    def update(self, run: RunState) -> None:
        self.queue.update(run)
        self.timers.update(run)
        self.waiting.update(run)

    def rebuild(self, runs: Iterable[RunState], keys: Iterable[KeyState] = ()) -> None:
        self.queue, self.timers, self.waiting = QueueIndex(), TimerIndex(), WaitingIndex()
        for key in keys:
            self.queue.update_key(key)
        for run in runs:
            self.update(run)


class JobTimerIndex:
    """Jobs a timer waits for (``job_due_at``: the next cron tick), by when; asked about
    again the same way as runs while still due."""

    def __init__(self) -> None:
        self._due = _DueHeap()

    def __len__(self) -> int:
        return len(self._due)

    def update(self, job: JobState) -> None:
        self._due.set(job.job_id, job_due_at(job), job.job_id)

    def rebuild(self, jobs: Iterable[JobState]) -> None:
        self._due = _DueHeap()
        for job in jobs:
            self.update(job)

    def take_due(self, now: datetime, limit: int = 500) -> list[str]:
        """Jobs due by ``now`` (at most ``limit``). Each stays indexed and comes back
        later, less and less often, until its record changes."""
        return [job_id for job_id, _ in self._due.take(now, limit)]
