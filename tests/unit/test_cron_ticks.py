"""Cron in the domain: given events, when a command, then events.

A job with a cron gets a next_tick_at from the schedule follow-up of whatever command
changed its schedule; the timer's FireCronTick for exactly that tick triggers one run
(id derived from job and tick); anything else is a no-op.
"""

from datetime import datetime, timedelta

from msgspec.structs import replace

from events.types import JobCreated, JobCronTicked, JobScheduleSet, RunDispatched, RunTriggered
from services.domain import Aggregate, DisableJob, EnableJob, handle
from services.domain.operations.cron_tick import cron_run_id
from services.domain.schedule import MISSED_COUNTED
from services.domain.state import CronSchedule
from tests.unit.domain_support import T0, at, cid, create, empty, given, spec, tick, trigger

EVERY_MINUTE = "* * * * *"


def created(cron: str | None = EVERY_MINUTE, now: datetime = T0, **fields: object) -> Aggregate:
    return handle(empty(), create(now, cron=cron, **fields)).state


def types(events: list[tuple[str | None, object]]) -> list[str]:
    return [type(event).TYPE for _, event in events]  # type: ignore[attr-defined]


def test_creating_a_job_with_a_cron_schedules_its_first_tick() -> None:
    decision = handle(empty(), create(at(12.5), cron=EVERY_MINUTE, timezone="Europe/Paris"))
    assert decision.events[1:] == [(None, JobScheduleSet(
        next_tick_at=at(60), cron=EVERY_MINUTE, timezone="Europe/Paris"))]
    job = decision.state.job
    assert job.next_tick_at == at(60)
    assert job.schedule_of == CronSchedule(EVERY_MINUTE, "Europe/Paris")
    assert decision.answer.seq == 2  # the caller waits for the schedule too


def test_a_job_without_cron_or_disabled_has_no_schedule() -> None:
    for fields in ({"cron": None}, {"cron": EVERY_MINUTE, "enabled": False}):
        decision = handle(empty(), create(T0, **fields))
        assert types(decision.events) == ["job.created"]
        assert decision.state.job.next_tick_at is None


def test_the_due_tick_triggers_one_cron_run_and_schedules_the_next() -> None:
    state = created()
    decision = handle(state, tick(at(60), at(60.3)))
    run_id = cron_run_id("j", at(60))
    assert decision.events[0] == (None, JobCronTicked(tick_at=at(60), run_id=run_id,
                                                      next_tick_at=at(120), missed=0))
    rid, triggered = decision.events[1]
    assert rid == run_id and isinstance(triggered, RunTriggered)
    assert triggered.triggered_by == "cron"
    assert isinstance(decision.events[2][1], RunDispatched)
    assert decision.state.job.next_tick_at == at(120)
    assert decision.state.job.last_tick_at == at(60)


def test_a_repeated_tick_is_a_no_op_and_a_redecided_one_is_identical() -> None:
    state = created()
    command = tick(at(60), at(60.3))
    first = handle(state, command)
    # The processor lost its state write and decides the same command again: same events.
    assert handle(state, command).events == first.events
    # The timer asks again (another command, after a restart): the tick has fired.
    again = handle(first.state, tick(at(60), at(75)))
    assert again.events == [] and again.state == first.state


def test_a_tick_that_is_not_the_jobs_next_or_not_yet_due_does_nothing() -> None:
    state = created()
    for command in (tick(at(120), at(130)), tick(at(0), at(130)), tick(at(60), at(59))):
        assert handle(state, command).events == []


def test_run_ids_differ_per_tick_and_per_job() -> None:
    assert cron_run_id("j", at(60)) != cron_run_id("j", at(120))
    assert cron_run_id("j", at(60)) != cron_run_id("k", at(60))
    assert cron_run_id("j", at(60)) == cron_run_id("j", at(60))


def test_a_disabled_job_does_not_tick_and_loses_its_schedule() -> None:
    state = created()
    decision = handle(state, DisableJob(command_id=cid(), project_id="p", job_id="j",
                                        issued_at=at(61)))
    assert types(decision.events) == ["job.disabled", "job.schedule_set"]
    assert decision.events[1][1] == JobScheduleSet()
    assert decision.state.job.next_tick_at is None and decision.state.job.schedule_of is None
    assert handle(decision.state, tick(at(60), at(62))).events == []


def test_a_deleted_job_does_not_tick() -> None:
    state = created()
    gone = replace(state, job=replace(state.job, spec=None))
    decision = handle(gone, tick(at(60), at(61)))
    assert decision.events == [] and decision.answer.rejected


def test_reenabling_schedules_from_now_without_backfill() -> None:
    state = created()
    off = handle(state, DisableJob(command_id=cid(), project_id="p", job_id="j",
                                   issued_at=at(1))).state
    assert off.job.next_tick_at is None and off.job.spec is not None
    # Back on an hour later: no run for the ticks it slept through.
    decision = handle(off, EnableJob(command_id=cid(), project_id="p", job_id="j",
                                     issued_at=at(3600.5)))
    assert types(decision.events) == ["job.enabled", "job.schedule_set"]
    assert decision.state.job.next_tick_at == at(3660)


def test_missed_ticks_fire_one_run_for_the_latest_and_count_the_rest() -> None:
    state = created()
    decision = handle(state, tick(at(60), at(630)))  # 00:01 was due; it is 00:10:30
    ticked = decision.events[0][1]
    assert ticked == JobCronTicked(tick_at=at(600), run_id=cron_run_id("j", at(600)),
                                   next_tick_at=at(660), missed=9)
    assert types(decision.events).count("run.triggered") == 1


def test_missed_ticks_after_long_downtime_are_counted_up_to_the_cap() -> None:
    state = created()
    week = 7 * 86400
    decision = handle(state, tick(at(60), at(week + 30)))
    ticked = decision.events[0][1]
    assert isinstance(ticked, JobCronTicked)
    assert (ticked.tick_at, ticked.missed, ticked.next_tick_at) == \
        (at(week), MISSED_COUNTED, at(week + 60))


def test_a_change_from_a_clock_behind_the_last_tick_never_refires_it() -> None:
    state = handle(created(), tick(at(60), at(60.1))).state
    assert state.job.spec is not None
    # The schedule changes (an edit) from an API whose clock is 5 s behind the timer's.
    edited = replace(state, job=replace(state.job, spec=replace(
        state.job.spec, cron="*/1 * * * *")))
    decision = handle(edited, trigger("r9", at(55)))
    assert decision.state.job.next_tick_at == at(120)


def test_a_job_created_before_cron_fired_gets_its_schedule_with_its_next_command() -> None:
    legacy = given([(None, JobCreated(spec=spec(cron=EVERY_MINUTE)))])
    assert legacy.job.next_tick_at is None
    decision = handle(legacy, trigger("r1", at(10)))
    assert decision.state.job.next_tick_at == at(60)


def test_hourly_next_tick_in_paris_across_fall_back() -> None:
    now = datetime.fromisoformat("2024-10-27T00:10:00+00:00")  # 02:10 CEST
    state = created("0 * * * *", now, timezone="Europe/Paris")
    first = state.job.next_tick_at
    assert first == now + timedelta(minutes=50)  # 03:00 CEST became 02:00 CET
    nxt = handle(state, tick(first, first)).state.job.next_tick_at  # type: ignore[arg-type]
    assert nxt == first + timedelta(hours=1)  # type: ignore[operator]
