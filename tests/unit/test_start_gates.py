"""The start gates in the core: the execution window and the rate limit hold queued runs,
record the hold once, and let them start when the timer wakes the job."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from events.types import RunDispatched
from services.domain import Aggregate, Command, WakeJob, handle
from services.domain.pacing import (
    RateCounter,
    bucket_width_ms,
    rate_frees_at,
    started_in_window,
    window_open,
    window_opens_at,
    with_start,
)
from services.domain.state import job_due_at
from tests.unit.domain_support import at, cid, create, empty, succeed, trigger


def run(*commands: Command, state: Aggregate | None = None) -> tuple[Aggregate, list[str]]:
    state = state or empty()
    names: list[str] = []
    for command in commands:
        decision = handle(state, command)
        state = decision.state
        names = [type(event).__name__ for _, event in decision.events]
    return state, names


def wake(now: datetime) -> WakeJob:
    return WakeJob(command_id=cid(), project_id="p", job_id="j", issued_at=now,
                   actor="timer", awaits_outcome=False)


# The window, as a pure function

def test_a_window_is_open_in_the_minutes_its_cron_names_in_the_jobs_zone() -> None:
    cron = "* 9-17 * * 1-5"  # weekdays, 09:00-17:59 local
    monday_9 = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)  # 09:00:30 in Paris
    assert window_open(cron, "Europe/Paris", monday_9)
    assert not window_open(cron, "Europe/Paris", monday_9 - timedelta(minutes=1))
    assert not window_open(cron, "UTC", monday_9)
    friday_evening = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 18:00 in Paris
    assert window_opens_at(cron, "Europe/Paris", friday_evening) == datetime(
        2026, 11, 30, 8, 0, tzinfo=UTC)


# The rate counter, as a pure function

@settings(max_examples=300)
@given(starts=st.lists(st.integers(0, 20_000), max_size=60), window=st.integers(1, 5),
       probes=st.lists(st.integers(0, 25_000), min_size=1, max_size=10))
def test_the_counter_never_counts_fewer_starts_than_the_window_holds(
        starts: list[int], window: int, probes: list[int]) -> None:
    counter: RateCounter | None = None
    times = sorted(at(ms / 1000) for ms in starts)
    for i, start in enumerate(times):
        counter = with_start(counter, window, start)
        for probe in probes:
            now = start + timedelta(milliseconds=probe % 7000)
            exact = sum(1 for s in times[:i + 1] if now - timedelta(seconds=window) < s <= now)
            assert started_in_window(counter, window, now) >= exact
    # It forgets, at most one bucket late: a window and a bucket after the last start,
    # nothing is counted; and it never holds more than a window's buckets.
    if counter is not None:
        late = timedelta(seconds=window, milliseconds=bucket_width_ms(window))
        assert started_in_window(counter, window, times[-1] + late) == 0
        assert len(counter.buckets) <= 33


def test_the_count_falls_below_the_limit_when_the_oldest_bucket_leaves() -> None:
    counter = None
    for t in (0.0, 0.5, 1.0):
        counter = with_start(counter, 2, at(t))
    assert rate_frees_at(counter, 4, 2, at(1)) is None  # below the limit now
    frees = rate_frees_at(counter, 3, 2, at(1))
    assert frees is not None and at(2) <= frees <= at(2) + timedelta(milliseconds=63)
    assert started_in_window(counter, 2, frees) == 2


# Gates in handle

def test_runs_wait_outside_the_window_and_start_when_the_job_wakes() -> None:
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    state, names = run(create(saturday, execution_window_cron="* 9-17 * * 1-5"),
                       trigger("r1", saturday), trigger("r2", saturday))
    assert state.job.queued_count == 2
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert (state.job.held_until, state.job.held_reason) == (monday_9, "execution_window")
    assert job_due_at(state.job) == monday_9
    # Recorded once: the second trigger found the hold in place.
    assert names == ["RunTriggered"]
    state, names = run(wake(monday_9), state=state)
    assert names == ["RunDispatched", "RunDispatched", "JobDispatchHeld"]
    assert state.job.held_until is None and state.job.held_reason is None


def test_the_rate_limit_holds_starts_and_wakes_the_job_when_it_has_room() -> None:
    state, names = run(create(rate_limit_max=2, rate_limit_window_secs=10),
                       *(trigger(f"r{i}", at(0)) for i in range(5)))
    assert state.job.running_count == 2 and state.job.queued_count == 3
    assert state.job.held_reason == "rate_limit"
    until = state.job.held_until
    assert until is not None and at(10) <= until <= at(10.5)
    # Finishing runs frees concurrency, not the rate: nothing starts before the window.
    state, names = run(succeed("r0", now=at(1)), succeed("r1", now=at(2)), state=state)
    assert state.job.running_count == 0 and state.job.queued_count == 3
    state, names = run(wake(until), state=state)
    assert names.count("RunDispatched") == 2 and state.job.queued_count == 1
    assert state.job.held_reason == "rate_limit"


def test_no_more_than_the_limit_starts_in_any_window_whatever_the_timing() -> None:
    state, _ = run(create(rate_limit_max=3, rate_limit_window_secs=2))
    started: list[datetime] = []
    now = at(0)
    for i in range(40):
        now += timedelta(milliseconds=137 * (i % 5))
        decision = handle(state, trigger(f"r{i}", now))
        state = decision.state
        if state.job.held_until is not None and state.job.held_until <= now:
            decision = handle(state, wake(now))
            state = decision.state
        for rid, event in decision.events:
            if isinstance(event, RunDispatched):
                started.append(now)
                state = handle(state, succeed(rid, now=now)).state
    for t in started:
        assert sum(1 for s in started if t <= s < t + timedelta(seconds=2)) <= 3
    assert len(started) >= 3


def test_a_hold_ends_when_no_run_waits_any_more() -> None:
    state, _ = run(create(rate_limit_max=1, rate_limit_window_secs=60),
                   trigger("r1", at(0)), trigger("r2", at(0)))
    assert state.job.held_reason == "rate_limit"
    from services.domain import CancelRun

    state, names = run(CancelRun(command_id=cid(), project_id="p", job_id="j",
                                 issued_at=at(1), run_id="r2"), state=state)
    assert names == ["RunCanceled", "JobDispatchHeld"]
    assert state.job.held_until is None and job_due_at(state.job) is None


def test_a_deleted_job_with_queued_runs_asks_to_be_woken_at_once() -> None:
    from services.domain import DeleteJob

    state, _ = run(create(max_concurrency=1), *(trigger(f"r{i}", at(0)) for i in range(3)))
    deleted = handle(state, DeleteJob(command_id=cid(), project_id="p", job_id="j",
                                      issued_at=at(1)))
    # This aggregate held every run, so one command drained them all; a job with more
    # left (the processor loads a chunk) is due at once, on each new version of it.
    assert deleted.state.job.queued_count == 0 and job_due_at(deleted.state.job) is None
    left = replace(deleted.state.job, queued_count=5)
    due = job_due_at(left)
    assert due is not None and due < at(0)
    following = job_due_at(replace(left, seq=left.seq + 1))
    assert following is not None and following != due


async def test_the_processor_starts_held_runs_when_an_update_opens_the_gate() -> None:
    from services.domain import UpdateJob, encode_command
    from services.processor.handler import process_command
    from tests.unit.test_processor_handler import MemorySink, MemoryStore

    store, sink = MemoryStore(), MemorySink()
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    for command in (create(saturday, execution_window_cron="* 9-17 * * 1-5"),
                    *(trigger(f"r{i}", saturday) for i in range(3))):
        await process_command(encode_command(command), store, sink)
    assert sink.orders == []
    opened = UpdateJob(command_id=cid(), project_id="p", job_id="j", issued_at=saturday,
                       changes={"execution_window_cron": None})
    await process_command(encode_command(opened), store, sink)
    assert len(sink.orders) == 3
    job = store.get_job("j")
    assert job is not None and job.held_reason is None and job.running_count == 3


def customer(run_id: str, now: datetime, who: str | None) -> Command:
    from msgspec.structs import replace as with_fields

    return with_fields(trigger(run_id, now), metadata={} if who is None else {"customer": who})


def test_a_rate_key_limits_each_value_alone_and_others_pass_it() -> None:
    from events.types import RateLimitKey

    per_customer = [RateLimitKey(name="customer", max=2, window_secs=10)]
    state, _ = run(create(rate_limit_keys=per_customer),
                   *(customer(f"a{i}", at(0), "acme") for i in range(4)),
                   customer("b0", at(0), "bolt"), customer("n0", at(0), None))
    running = {rid for rid, r in state.runs.items() if r.status.value == "running"}
    # Two of acme's four start; bolt's and the run without a customer are not held back
    # behind acme's waiting ones.
    assert running == {"a0", "a1", "b0", "n0"}
    assert state.runs["a2"].status.value == "queued"
    assert state.job.held_reason == "rate_limit"
    until = state.job.held_until
    assert until is not None and at(10) <= until <= at(10.5)
    state, names = run(wake(until), state=state)
    assert names.count("RunDispatched") == 2 and state.job.queued_count == 0
    assert state.job.held_until is None


async def test_the_processor_counts_a_rate_key_across_commands_and_batches() -> None:
    from events import decode_dispatch
    from events.types import RateLimitKey
    from services.domain import encode_command
    from services.processor.handler import process_commands
    from tests.unit.test_processor_handler import MemorySink, MemoryStore

    store, sink = MemoryStore(), MemorySink()

    async def batch(*commands: Command) -> None:
        for writes in await process_commands([encode_command(c) for c in commands],
                                             store, sink):
            writes.apply_to(store)

    per_customer = [RateLimitKey(name="customer", max=2, window_secs=3)]
    await batch(create(rate_limit_keys=per_customer))
    # A new run's own counter is read too, within a batch and in the next one.
    await batch(*(customer(f"a{i}", at(0), "acme") for i in range(3)))
    await batch(customer("a3", at(1), "acme"), customer("b0", at(1), "bolt"))
    assert [decode_dispatch(raw).run_id for raw in sink.orders] == ["a0", "a1", "b0"]
