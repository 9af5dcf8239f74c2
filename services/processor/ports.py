"""The handler's state port over faust: the tables (sink.py has the topics)."""

from datetime import datetime

from faust.types import TableT

from services.domain import JobState, KeyState, RunState
from services.domain.pacing import RateCounter
from services.domain.state import Answer, DedupRecord
from services.processor.indexes import JobTimerIndex, RunIndexes
from services.processor.statecodec import (
    decode_answer,
    decode_dedup,
    decode_job,
    decode_key,
    decode_rate,
    decode_run,
    dedup_id,
    key_id,
    rate_id,
)


class TableStore:
    """The handler's StateStore over four faust tables (values are msgpack bytes), with
    the in-memory indexes derived from the runs, keys and jobs tables."""

    def __init__(self, jobs: TableT, runs: TableT, answers: TableT, keys: TableT) -> None:
        self.jobs, self.runs, self.answers, self.keys = jobs, runs, answers, keys
        self.indexes = RunIndexes()
        self.job_timers = JobTimerIndex()
        # Set when the table's partitions change (a rebalance, a recovery): the indexes
        # are rebuilt from the runs and jobs tables before they are next read.
        self.stale = True

    def _fresh(self) -> RunIndexes:
        if self.stale:
            self.stale = False
            self.indexes.rebuild((decode_run(raw) for raw in list(self.runs.values())),
                                 (decode_key(raw) for raw in list(self.keys.values())))
            self.job_timers.rebuild(decode_job(raw) for raw in list(self.jobs.values()))
        return self.indexes

    def waiting(self, job_id: str, limit: int, per_key: int | None = None) -> list[str]:
        return self._fresh().queue.first(job_id, limit, per_key)

    def lane(self, job_id: str, key: str, limit: int) -> list[str]:
        return self._fresh().queue.lane(job_id, key, limit)

    def waiting_born(self, job_id: str, after: int, limit: int) -> list[str]:
        return self._fresh().waiting.after(job_id, after, limit)

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

    def get_key(self, job_id: str, key: str) -> KeyState | None:
        raw = self.keys.get(key_id(job_id, key).encode())
        return None if raw is None else decode_key(raw)

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

    def put_key(self, key: KeyState, raw: bytes | None) -> None:
        """Store a key record, or delete it (``raw`` None: nothing queued or running)."""
        table_key = key_id(key.job_id, key.key).encode()
        if raw is None:
            if table_key in self.keys:
                del self.keys[table_key]
        else:
            self.keys[table_key] = raw
        if not self.stale:
            self.indexes.queue.update_key(key)

    def put_answer(self, command_id: str, raw: bytes) -> None:
        self.answers[command_id.encode()] = raw

    def get_dedup(self, job_id: str, idempotency_key: str) -> DedupRecord | None:
        raw = self.answers.get(dedup_id(job_id, idempotency_key).encode())
        return None if raw is None else decode_dedup(raw)

    def put_dedup(self, job_id: str, idempotency_key: str, raw: bytes) -> None:
        # In the answers table: like an answer, a record written once per trigger and
        # read by id, so it needs no table (and changelog) of its own.
        self.answers[dedup_id(job_id, idempotency_key).encode()] = raw

    def get_rate(self, job_id: str, name: str, value: str) -> RateCounter | None:
        raw = self.answers.get(rate_id(job_id, name, value).encode())
        return None if raw is None else decode_rate(raw)

    def put_rate(self, job_id: str, name: str, value: str, raw: bytes) -> None:
        self.answers[rate_id(job_id, name, value).encode()] = raw
