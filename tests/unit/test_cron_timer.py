"""The processor's job-level timer: jobs indexed by their next tick, asked about once due,
and a tick asked for twice fires one run."""

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from faust.types import TableT

from events import JobSpec, decode_event
from events.types import JobCronTicked, RunTriggered
from services.domain import CreateJob, JobState, decode_command, encode_command
from services.domain.commands import FireCronTick
from services.domain.state import CronSchedule
from services.processor.handler import process_command
from services.processor.indexes import ASK_AGAIN, JobTimerIndex
from services.processor.ports import TableStore
from services.processor.timer import ask_for_job_timers
from tests.unit.test_processor_handler import MemorySink

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job(job_id: str, next_tick_at: datetime | None) -> JobState:
    return JobState(job_id=job_id, project_id="p", next_tick_at=next_tick_at,
                    schedule_of=CronSchedule("* * * * *", "UTC") if next_tick_at else None)


def test_jobs_come_due_at_their_next_tick_then_again_less_often_until_it_moves() -> None:
    index = JobTimerIndex()
    index.update(job("a", at(60)))
    index.update(job("b", at(120)))
    index.update(job("c", None))
    assert index.take_due(at(59)) == []
    assert index.take_due(at(60)) == ["a"]
    assert index.take_due(at(60)) == []  # asked; not again at once
    assert index.take_due(at(60) + ASK_AGAIN) == ["a"]
    index.update(job("a", at(180)))  # the tick fired: the next one
    assert index.take_due(at(120)) == ["b"]
    index.update(job("b", None))  # disabled
    assert index.take_due(at(1000)) == ["a"] and len(index) == 1


def test_a_rebuild_indexes_what_the_job_records_say() -> None:
    index = JobTimerIndex()
    index.update(job("gone", at(1)))
    index.rebuild([job("a", at(5)), job("b", None)])
    assert index.take_due(at(10)) == ["a"]


class Commands:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append(value)


def table_store() -> TableStore:
    # Dicts stand in for faust's tables (keys and values are bytes, as there).
    tables = cast(list[TableT], [cast(Any, {}) for _ in range(4)])
    return TableStore(*tables)


async def test_a_tick_asked_for_twice_triggers_one_cron_run() -> None:
    store, sink, commands = table_store(), MemorySink(), Commands()
    spec = JobSpec(name="n", slug="s", endpoint_url="http://e.example/x", cron="* * * * *")
    create = CreateJob(command_id="c1", project_id="p", job_id="j", issued_at=at(5),
                       spec=spec)
    await process_command(encode_command(create), store, sink)
    assert await ask_for_job_timers(store, commands.send, commands.send, at(59)) == 0
    # The processor is slow: the timer asks, then asks again before the first is decided.
    assert await ask_for_job_timers(store, commands.send, commands.send, at(60.2)) == 1
    assert await ask_for_job_timers(store, commands.send, commands.send,
                                    at(60.2) + ASK_AGAIN) == 1
    ticks = [decode_command(raw) for raw in commands.sent]
    assert all(isinstance(c, FireCronTick) and c.tick_at == at(60) for c in ticks)
    assert all(not c.awaits_outcome for c in ticks)
    for raw in commands.sent:
        await process_command(raw, store, sink)
    events = [decoded.event for raw in sink.events if (decoded := decode_event(raw))]
    assert [type(e) for e in events].count(JobCronTicked) == 1
    runs = [e for e in events if isinstance(e, RunTriggered)]
    assert len(runs) == 1 and runs[0].triggered_by == "cron"
    stored = store.get_job("j")
    assert stored is not None and stored.next_tick_at == at(120)
    # The next tick is indexed from the job's new record; the old one is not asked again.
    commands.sent.clear()
    assert await ask_for_job_timers(store, commands.send, commands.send, at(100)) == 0
    assert await ask_for_job_timers(store, commands.send, commands.send, at(120)) == 1
