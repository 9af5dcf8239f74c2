"""The handler's state port over faust: the tables (sink.py has the topics)."""

from datetime import datetime

from faust.types import TableT

from services.domain import JobState, RunState
from services.domain.state import Answer
from services.processor.indexes import JobTimerIndex, RunIndexes
from services.processor.statecodec import decode_answer, decode_job, decode_run


class TableStore:
    """The handler's StateStore over three faust tables (values are msgpack bytes), with
    the in-memory indexes derived from the runs table and the jobs table."""

    def __init__(self, jobs: TableT, runs: TableT, answers: TableT) -> None:
        self.jobs, self.runs, self.answers = jobs, runs, answers
        self.indexes = RunIndexes()
        self.job_timers = JobTimerIndex()
        # Set when the table's partitions change (a rebalance, a recovery): the indexes
        # are rebuilt from the runs and jobs tables before they are next read.
        self.stale = True

    def _fresh(self) -> RunIndexes:
        if self.stale:
            self.stale = False
            self.indexes.rebuild(decode_run(raw) for raw in list(self.runs.values()))
            self.job_timers.rebuild(decode_job(raw) for raw in list(self.jobs.values()))
        return self.indexes

    def waiting(self, job_id: str, limit: int) -> list[str]:
        return self._fresh().queue.first(job_id, limit)

    def due(self, now: datetime, limit: int = 500) -> dict[str, list[str]]:
        """Runs a timer waits for that are due, by job (see TimerIndex.take_due)."""
        return self._fresh().timers.take_due(now, limit)

    def due_jobs(self, now: datetime, limit: int = 500) -> list[str]:
        """Jobs a timer waits for that are due (see JobTimerIndex.take_due)."""
        self._fresh()
        return self.job_timers.take_due(now, limit)

    def get_job(self, job_id: str) -> JobState | None:
        raw = self.jobs.get(job_id.encode())
        return None if raw is None else decode_job(raw)

    def get_run(self, run_id: str) -> RunState | None:
        raw = self.runs.get(run_id.encode())
        return None if raw is None else decode_run(raw)

    def get_answer(self, command_id: str) -> Answer | None:
        raw = self.answers.get(command_id.encode())
        return None if raw is None else decode_answer(raw)

    def put_job(self, job_id: str, raw: bytes) -> None:
        self.jobs[job_id.encode()] = raw
        if not self.stale:
            # Decoding a job's record is cheap (counts, no lists), and only the store
            # needs it: the handler's writes stay bytes.
            self.job_timers.update(decode_job(raw))

    def put_run(self, run: RunState, raw: bytes) -> None:
        self.runs[run.run_id.encode()] = raw
        if not self.stale:
            self.indexes.update(run)

    def put_answer(self, command_id: str, raw: bytes) -> None:
        self.answers[command_id.encode()] = raw
