"""A trigger's options in the core: a scheduled start, the run TTL, the dedup window,
and the per-run overrides. Given commands, when a command, then events."""

from datetime import datetime
from typing import Any

from msgspec.structs import replace

from events.types import (
    RunDispatched,
    RunExpired,
    RunFailed,
    RunOverrides,
    RunRetryScheduled,
    RunTriggered,
)
from services.domain import Aggregate, Command, DisableJob, RunStatus, TriggerRun, handle
from services.domain.handle import Decision
from tests.unit.domain_support import at, cid, create, empty, fail, fire, succeed, trigger


def run(*commands: Command, state: Aggregate | None = None) -> tuple[Aggregate, Decision]:
    """Handle the commands in order: the state after them and the last decision."""
    state = state or empty()
    decision = None
    for command in commands:
        decision = handle(state, command)
        state = decision.state
    assert decision is not None
    return state, decision


def kinds(decision: Decision) -> list[tuple[str | None, str]]:
    return [(run_id, type(event).__name__) for run_id, event in decision.events]


def later(run_id: str, now: datetime, start: datetime | None = None,
          **fields: Any) -> TriggerRun:
    return replace(trigger(run_id, now), scheduled_at=start, **fields)


# Scheduled starts

def test_a_run_scheduled_ahead_waits_delayed_and_starts_when_its_time_comes() -> None:
    state, decision = run(create(), later("r1", at(0), at(60)))
    assert kinds(decision) == [("r1", "RunTriggered")]
    assert state.runs["r1"].status is RunStatus.DELAYED
    assert state.job.delayed_count == 1 and state.job.queued_count == 0
    # Asked early (a timer that looked too soon): nothing.
    state, decision = run(fire(at(59)), state=state)
    assert decision.events == []
    state, decision = run(fire(at(60)), state=state)
    assert kinds(decision) == [("r1", "RunRequeued"), ("r1", "RunDispatched")]
    assert state.runs["r1"].attempt == 1


def test_a_start_time_not_in_the_future_queues_the_run_at_once() -> None:
    for start in (at(-30), at(0)):
        _, decision = run(create(), later("r1", at(0), start))
        triggered = decision.events[0][1]
        assert isinstance(triggered, RunTriggered) and triggered.scheduled_at is None
        assert kinds(decision)[1] == ("r1", "RunDispatched")


# Run TTL

def test_a_queued_run_not_started_by_its_ttl_expires_on_the_timer() -> None:
    state, _ = run(create(max_concurrency=1, run_ttl_secs=30), trigger("r1", at(0)),
                   trigger("r2", at(5)))
    assert state.runs["r2"].expires_at == at(35)
    _, decision = run(fire(at(34), ["r2"]), state=state)
    assert decision.events == []
    state, decision = run(fire(at(35), ["r2"]), state=state)
    assert kinds(decision) == [("r2", "RunExpired")]
    assert state.runs["r2"].status is RunStatus.EXPIRED
    assert state.job.queued_count == 0
    # The running run is not touched by its TTL: it had started.
    assert state.runs["r1"].status is RunStatus.RUNNING


def test_a_run_past_its_ttl_expires_instead_of_starting_and_leaves_its_room() -> None:
    state, _ = run(create(max_concurrency=1, run_ttl_secs=30), trigger("r1", at(0)),
                   trigger("r2", at(1)), trigger("r3", at(20)))
    # No timer came; r1 finishes after r2's expiry but before r3's.
    state, decision = run(succeed("r1", now=at(40)), state=state)
    assert kinds(decision) == [("r1", "RunCompleted"), ("r2", "RunExpired"),
                               ("r3", "RunDispatched")]
    expired = decision.events[1][1]
    assert isinstance(expired, RunExpired) and expired.expires_at == at(31)


def test_a_scheduled_runs_ttl_counts_from_its_start_time() -> None:
    state, _ = run(create(run_ttl_secs=30), later("r1", at(0), at(100)))
    assert state.runs["r1"].expires_at == at(130)
    state, decision = run(fire(at(100)), state=state)
    assert kinds(decision) == [("r1", "RunRequeued"), ("r1", "RunDispatched")]


def test_a_run_that_started_does_not_expire_while_it_waits_for_a_retry() -> None:
    state, _ = run(create(run_ttl_secs=5, retry_delays_secs=[60]), trigger("r1", at(0)),
                   fail("r1", 1, at(1)))
    assert state.runs["r1"].status is RunStatus.DELAYED
    state, decision = run(fire(at(61)), state=state)
    assert kinds(decision) == [("r1", "RunRequeued"), ("r1", "RunDispatched")]


# Dedup window

def test_a_key_within_the_window_gets_its_run_and_after_it_a_new_one() -> None:
    state, _ = run(create(dedup_window_secs=60), later("r1", at(0), idempotency_key="k"))
    before = state
    state, decision = run(later("r2", at(59.999), idempotency_key="k"), state=state)
    assert decision.events == [] and state == before
    assert decision.answer.idempotency_hit and decision.answer.run_id == "r1"
    # At the window's end the key is free again: a new run, which opens a new window.
    state, decision = run(later("r3", at(60), idempotency_key="k"), state=state)
    assert not decision.answer.idempotency_hit and decision.answer.run_id == "r3"
    assert state.dedup["k"].run_id == "r3" and state.dedup["k"].until == at(120)
    _, decision = run(later("r4", at(61), idempotency_key="k"), state=state)
    assert decision.answer.run_id == "r3"


def test_keys_are_told_apart_and_a_run_without_one_is_never_a_hit() -> None:
    state, _ = run(create(), later("r1", at(0), idempotency_key="a"))
    state, decision = run(later("r2", at(1), idempotency_key="b"), trigger("r3", at(2)),
                          state=state)
    assert set(state.runs) == {"r1", "r2", "r3"} and not decision.answer.idempotency_hit


def test_a_hit_answers_even_after_the_job_is_disabled() -> None:
    # A client retrying a request that succeeded gets its run, not a refusal.
    state, _ = run(create(), later("r1", at(0), idempotency_key="k"),
                   DisableJob(command_id=cid(), project_id="p", job_id="j", issued_at=at(1)))
    _, decision = run(later("r2", at(2), idempotency_key="k"), state=state)
    assert decision.answer.idempotency_hit and decision.answer.run_id == "r1"
    _, decision = run(later("r3", at(2), idempotency_key="other"), state=state)
    assert decision.answer.rejected and decision.answer.code == "conflict"


# Overrides

def test_overrides_replace_the_jobs_attempts_timeout_and_retry_policy() -> None:
    overrides = RunOverrides(max_attempts=3, timeout_secs=7, retry_backoff="exponential",
                             retry_initial_delay_secs=10, retry_max_delay_secs=15)
    state, decision = run(create(max_attempts=1, timeout_secs=30),
                          later("r1", at(0), overrides=overrides))
    dispatched = decision.events[-1][1]
    assert isinstance(dispatched, RunDispatched) and dispatched.timeout_secs == 7
    state, decision = run(fail("r1", 1, at(1)), state=state)
    first = decision.events[0][1]
    assert isinstance(first, RunRetryScheduled) and first.next_retry_at == at(11)
    state, _ = run(fire(at(11)), state=state)
    state, decision = run(fail("r1", 2, at(12)), state=state)
    second = decision.events[0][1]
    # Exponential would wait 20 s: the cap makes it 15.
    assert isinstance(second, RunRetryScheduled) and second.next_retry_at == at(27)
    state, _ = run(fire(at(27)), state=state)
    _, decision = run(fail("r1", 3, at(28)), state=state)
    assert isinstance(decision.events[0][1], RunFailed)


def test_without_overrides_the_job_decides() -> None:
    state, decision = run(create(max_attempts=1, timeout_secs=30), trigger("r1", at(0)))
    dispatched = decision.events[-1][1]
    assert isinstance(dispatched, RunDispatched) and dispatched.timeout_secs == 30
    _, decision = run(fail("r1", 1, at(1)), state=state)
    assert isinstance(decision.events[0][1], RunFailed)


# Through the processor's handler: the dedup record is stored and read back

async def test_the_processor_keeps_the_keys_run_within_a_batch_and_across_batches() -> None:
    from services.domain import encode_command
    from services.outcomes import decode_outcome
    from services.processor.handler import process_commands
    from tests.unit.test_processor_handler import MemorySink, MemoryStore

    store, sink = MemoryStore(), MemorySink()

    async def batch(*commands: Command) -> None:
        for writes in await process_commands([encode_command(c) for c in commands],
                                             store, sink):
            writes.apply_to(store)

    await batch(create(dedup_window_secs=60))
    await batch(later("r1", at(0), idempotency_key="k"),
                later("r2", at(1), idempotency_key="k"))
    await batch(later("r3", at(2), idempotency_key="k"),
                later("r4", at(61), idempotency_key="k"))
    outcomes = [decode_outcome(raw) for raw in sink.outcomes][1:]
    assert [(o.run_id, o.idempotency_hit) for o in outcomes] == [
        ("r1", False), ("r1", True), ("r1", True), ("r4", False)]
    assert set(store.runs) == {"r1", "r4"}
