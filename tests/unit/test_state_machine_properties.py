"""Random command sequences only ever produce legal transitions.

A Hypothesis state machine drives ``handle`` with arbitrary commands (including wrong
attempts, repeats, cancels at any time and a clock that jumps) and checks after every
step: transitions follow the state machine, terminal runs never change, seq is gapless,
concurrency limits hold, the job's run indexes agree with the runs, attempts stay within
max_attempts, and a rejected command changes nothing. Cron ticks (the due one, stale or
early ones, after any delay) fire each tick at most once, with a fresh run, and keep
the job's next tick after its last one and on the schedule it should have. Triggers
come scheduled or not, with or without an idempotency key and overrides, on a job with
or without a run TTL: a key used within the dedup window gets its run back and changes
nothing, and only a never-started run expires.
"""

from datetime import datetime, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from msgspec.structs import replace

from events.types import (
    JobCronTicked,
    RateLimitKey,
    RunAccepted,
    RunCanceled,
    RunCancelRequested,
    RunChildSpawned,
    RunCompleted,
    RunCrashed,
    RunDispatched,
    RunExpired,
    RunFailed,
    RunHeartbeatRecorded,
    RunMessageLogged,
    RunOverrides,
    RunProgressReported,
    RunRequeued,
    RunRetryScheduled,
    RunTriggered,
)
from services.domain import (
    TERMINAL,
    Aggregate,
    Command,
    DeleteJob,
    DisableJob,
    EnableJob,
    RunStatus,
    SetProjectQuotas,
    UpdateJob,
    WakeJob,
    accepts_triggers,
    handle,
)
from services.domain.commands import (
    LogRunMessage,
    RecordHeartbeat,
    ReportAttemptAccepted,
    ReportProgress,
    SpawnChild,
    SweepWaitingRuns,
)
from services.domain.operations.hold import hold_of, key_held_until, start_room
from services.domain.state import wanted_schedule
from tests.unit.domain_support import (
    T0,
    cancel,
    cid,
    create,
    empty,
    fail,
    fire,
    succeed,
    tick,
    trigger,
)

S = RunStatus
# event type -> (statuses it may follow, status it leads to)
LEGAL: dict[type, tuple[set[S | None], set[S]]] = {
    RunTriggered: ({None}, {S.QUEUED, S.DELAYED}),
    RunExpired: ({S.QUEUED}, {S.EXPIRED}),
    RunDispatched: ({S.QUEUED}, {S.RUNNING}),
    RunCompleted: ({S.RUNNING}, {S.COMPLETED}),
    RunRetryScheduled: ({S.RUNNING}, {S.DELAYED}),
    # From queued: a run that may not run under the latest version (incompatible_version).
    RunFailed: ({S.RUNNING, S.QUEUED}, {S.FAILED, S.TIMED_OUT}),
    RunCancelRequested: ({S.RUNNING}, {S.CANCELING}),
    RunRequeued: ({S.DELAYED}, {S.QUEUED}),
    RunCanceled: ({S.QUEUED, S.DELAYED, S.CANCELING}, {S.CANCELED}),
    RunCrashed: ({S.RUNNING}, {S.CRASHED}),
}
# Events about an attempt in progress that leave its status as it is.
KEEPS_STATUS = {RunAccepted: {S.RUNNING},
                RunHeartbeatRecorded: {S.RUNNING, S.CANCELING},
                RunProgressReported: {S.RUNNING, S.CANCELING},
                RunMessageLogged: {S.RUNNING, S.CANCELING},
                RunChildSpawned: {S.RUNNING, S.CANCELING}}


class RunMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state: Aggregate = empty()
        self.now = T0
        self.events_seen = 0
        self.run_ids: list[str] = []
        self.limit: int | None = None
        self.per_key: int | None = None
        self.max_attempts = 3
        self.last: Command | None = None
        self.ticks_fired: list[object] = []
        self.rate: tuple[int, int] | None = None
        self.per_customer: tuple[int, int] | None = None
        self.started: list[datetime] = []
        self.started_by_customer: dict[str, list[datetime]] = {}

    @initialize(max_attempts=st.integers(1, 4), limit=st.none() | st.integers(1, 3),
                per_key=st.none() | st.integers(1, 2),
                strategy=st.sampled_from(["fixed", "exponential", "custom"]),
                delays=st.lists(st.integers(0, 30), min_size=1, max_size=3),
                cron=st.sampled_from([None, "* * * * *", "*/5 * * * *", "30 2 * * *"]),
                timezone=st.sampled_from(["UTC", "Europe/Paris"]),
                ttl=st.none() | st.integers(1, 200), dedup=st.integers(1, 300),
                rate=st.none() | st.tuples(st.integers(1, 3), st.integers(1, 30)),
                window=st.sampled_from([None, None, "*/2 * * * *", "0-29 * * * *"]),
                per_customer=st.none() | st.tuples(st.integers(1, 2), st.integers(1, 30)))
    def create_job(self, max_attempts: int, limit: int | None, per_key: int | None,
                   strategy: str, delays: list[int], cron: str | None, timezone: str,
                   ttl: int | None, dedup: int, rate: tuple[int, int] | None,
                   window: str | None, per_customer: tuple[int, int] | None) -> None:
        self.max_attempts, self.limit, self.per_key = max_attempts, limit, per_key
        self.rate, self.per_customer = rate, per_customer
        keys = [] if per_customer is None else [RateLimitKey(
            name="customer", max=per_customer[0], window_secs=per_customer[1])]
        self.apply(create(self.now, max_attempts=max_attempts, max_concurrency=limit,
                          max_concurrency_per_key=per_key,
                          retry_strategy=strategy, retry_delays_secs=delays, cron=cron,
                          timezone=timezone, run_ttl_secs=ttl, dedup_window_secs=dedup,
                          rate_limit_max=rate and rate[0],
                          rate_limit_window_secs=rate and rate[1],
                          execution_window_cron=window, rate_limit_keys=keys))

    def apply(self, command: Command) -> None:
        # As the processor loads it: a sweep in progress (or beginning) sees the job's
        # waiting runs by birth.
        if self.state.job.sweep is not None or isinstance(command, SweepWaitingRuns):
            waiting = sorted((r for r in self.state.runs.values()
                              if r.status in (S.QUEUED, S.DELAYED)), key=lambda r: r.born)
            self.state = replace(self.state, sweep_chunk=[r.run_id for r in waiting],
                                 sweep_more=False)
        before = self.state
        decision = handle(before, command)
        self.last = command
        statuses = {rid: run.status for rid, run in before.runs.items()}
        for run_id, event in decision.events:
            if isinstance(event, JobCronTicked):
                assert event.tick_at not in self.ticks_fired, "a tick fired twice"
                self.ticks_fired.append(event.tick_at)
            if isinstance(event, RunDispatched) and event.at is not None:
                self.started.append(event.at)
                customer = decision.state.runs[run_id].metadata.get("customer")
                if customer is not None:
                    self.started_by_customer.setdefault(customer, []).append(event.at)
            if run_id is None:
                continue
            previous = statuses.get(run_id)
            assert previous not in TERMINAL, f"{run_id} changed after {previous}"
            if type(event) in KEEPS_STATUS:
                assert previous in KEEPS_STATUS[type(event)], f"{event} while {previous}"
                continue
            allowed_from, leads_to = LEGAL[type(event)]
            assert previous in allowed_from, f"{type(event).__name__} after {previous}"
            if isinstance(event, RunTriggered):
                statuses[run_id] = S.QUEUED if event.scheduled_at is None else S.DELAYED
            elif isinstance(event, RunExpired):
                assert self.state.runs[run_id].attempt == 0, "a started run expired"
                assert event.expires_at <= command.issued_at
                statuses[run_id] = S.EXPIRED
            else:
                statuses[run_id] = next(iter(leads_to)) if len(leads_to) == 1 else \
                    S(event.status)  # type: ignore[union-attr]
        if decision.answer.rejected:
            assert decision.state == before and decision.events == []
        elif not decision.answer.idempotency_hit:
            # Every handled command leaves the hold the gates call for at its time.
            job = decision.state.job
            assert (job.held_until, job.held_reason) == hold_of(decision.state,
                                                                command.issued_at)
        assert decision.state.job.seq == before.job.seq + len(decision.events)
        ids = [c.command_id for c in decision.followups]
        assert len(ids) == len(set(ids)), "two follow-ups share an id"
        assert decision.answer.seq == decision.state.job.seq
        self.events_seen += len(decision.events)
        self.state = decision.state
        for run_id, status in statuses.items():
            assert self.state.runs[run_id].status is status

    def some_run(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(self.run_ids)) if self.run_ids else "missing"

    def current_attempt(self, run_id: str, data: st.DataObject) -> int:
        run = self.state.runs.get(run_id)
        real = run.attempt if run else 1
        return data.draw(st.sampled_from([real, real, real, real + 1, max(0, real - 1)]))

    @rule(priority=st.integers(-2, 2), key=st.sampled_from([None, "a", "b", "c"]),
          delay=st.none() | st.integers(-5, 300),
          idem=st.sampled_from([None, None, "k1", "k2"]),
          attempts=st.none() | st.integers(1, 4), cap=st.none() | st.integers(0, 20),
          customer=st.sampled_from([None, "x", "y"]))
    def trigger_run(self, priority: int, key: str | None, delay: int | None,
                    idem: str | None, attempts: int | None, cap: int | None,
                    customer: str | None) -> None:
        run_id = f"r{len(self.run_ids) + 1}"
        overrides = None
        if attempts is not None or cap is not None:
            overrides = RunOverrides(max_attempts=attempts, retry_max_delay_secs=cap,
                                     retry_backoff="exponential")
            self.max_attempts = max(self.max_attempts, attempts or 0)
        seen = self.state.dedup.get(idem) if idem else None
        command = replace(trigger(run_id, self.now, priority=priority, concurrency_key=key),
                          idempotency_key=idem, overrides=overrides,
                          metadata={} if customer is None else {"customer": customer},
                          scheduled_at=None if delay is None
                          else self.now + timedelta(seconds=delay))
        before = self.state
        self.apply(command)
        answer = handle(before, command).answer
        if seen is not None and self.now < seen.until and not before.job.deleted:
            # Within the window: the key's run, and nothing else happens (a deleted job
            # answers nothing at all: it is not found).
            assert answer.idempotency_hit and answer.run_id == seen.run_id
            assert self.state == before
        else:
            assert not answer.idempotency_hit
        if run_id in self.state.runs:
            self.run_ids.append(run_id)

    @rule(data=st.data(), result=st.none() | st.dictionaries(st.text(max_size=3), st.integers()))
    def report_success(self, data: st.DataObject, result: Any) -> None:
        run_id = self.some_run(data)
        self.apply(succeed(run_id, self.current_attempt(run_id, data), self.now, result))

    @rule(data=st.data(), retryable=st.booleans(), kind=st.sampled_from(["http_status",
                                                                         "timeout"]))
    def report_failure(self, data: st.DataObject, retryable: bool, kind: str) -> None:
        run_id = self.some_run(data)
        self.apply(fail(run_id, self.current_attempt(run_id, data), self.now, retryable, kind))

    @rule(data=st.data())
    def cancel_run(self, data: st.DataObject) -> None:
        self.apply(cancel(self.some_run(data), self.now))

    @rule(seconds=st.integers(0, 120))
    def time_passes_and_timer_fires(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        self.apply(fire(self.now, self.run_ids))

    @rule(on=st.booleans())
    def enable_or_disable(self, on: bool) -> None:
        kind = EnableJob if on else DisableJob
        self.apply(kind(command_id=cid(), project_id="p", job_id="j", issued_at=self.now))
        assert accepts_triggers(self.state.job) is (on and not self.state.job.deleted)

    @rule(timeout=st.integers(1, 60), attempts=st.integers(1, 4),
          policy=st.sampled_from(["pin", "latest"]), compatible=st.booleans())
    def update_the_job(self, timeout: int, attempts: int, policy: str,
                       compatible: bool) -> None:
        version = self.state.job.version
        self.max_attempts = max(self.max_attempts, attempts)
        changes = {"timeout_secs": timeout, "max_attempts": attempts, "version_policy": policy,
                   "backwards_compatible": compatible,
                   "payload_schema": {"type": "object", "title": f"v{version + 1}"}}
        self.apply(UpdateJob(command_id=cid(), project_id="p", job_id="j", issued_at=self.now,
                             changes=changes))
        if not self.state.job.deleted:
            assert self.state.job.version == version + 1

    @rule()
    def delete_the_job(self) -> None:
        self.apply(DeleteJob(command_id=cid(), project_id="p", job_id="j", issued_at=self.now))
        assert self.state.job.deleted and not accepts_triggers(self.state.job)
        assert not any(run.status is S.QUEUED for run in self.state.runs.values())
    @rule(seconds=st.integers(0, 4000), stale=st.integers(-120, 120))
    def time_passes_and_cron_ticks(self, seconds: int, stale: int) -> None:
        # The timer asks for the job's next tick once it is due, or for a stale, early or
        # made-up one (a second timer, a restart): only the due one may fire.
        self.now += timedelta(seconds=seconds)
        due = self.state.job.next_tick_at or self.now
        self.apply(tick(due + timedelta(seconds=stale) if stale % 3 == 0 else due, self.now))

    @rule(enabled=st.booleans(), cron=st.sampled_from([None, "* * * * *", "*/5 * * * *"]),
          seconds=st.integers(0, 600))
    def definition_changes_then_any_command(self, enabled: bool, cron: str | None,
                                            seconds: int) -> None:
        # The definition swapped behind the commands' back (as an edit, an enable or a
        # disable leaves it): the next command's follow-up must put the schedule right
        # (the invariant below), whatever that command is.
        spec = self.state.job.spec
        if spec is None:
            return
        job = replace(self.state.job, enabled=enabled, spec=replace(spec, cron=cron))
        self.state = replace(self.state, job=job)
        self.now += timedelta(seconds=seconds)
        self.apply(tick(self.state.job.next_tick_at or self.now, self.now))

    @rule(seconds=st.integers(0, 200))
    def time_passes_and_the_job_wakes(self, seconds: int) -> None:
        # The timer wakes the job at its hold's end, or late, or early (a second timer).
        self.now += timedelta(seconds=seconds)
        self.apply(WakeJob(command_id=cid(), project_id="p", job_id="j", issued_at=self.now,
                           actor="timer", awaits_outcome=False))

    @rule(most=st.none() | st.integers(1, 5))
    def quotas_sent_to_the_jobs_stream(self, most: int | None) -> None:
        # Quotas belong to the project's own stream: sent to a job's, they are refused
        # and change nothing (apply checks that a rejection leaves the state alone).
        command = SetProjectQuotas(command_id=cid(), project_id="p", job_id="j",
                                   issued_at=self.now, max_queued_runs=most)
        assert handle(self.state, command).answer.rejected
        self.apply(command)

    @rule(data=st.data(), what=st.sampled_from(["accept", "heartbeat", "progress",
                                                 "message", "child"]))
    def the_endpoint_calls_back(self, data: st.DataObject, what: str) -> None:
        run_id = self.some_run(data)
        common = {"command_id": cid(), "project_id": "p", "job_id": "j",
                  "issued_at": self.now, "run_id": run_id,
                  "attempt": self.current_attempt(run_id, data)}
        made = {"accept": lambda: ReportAttemptAccepted(**common),
                "heartbeat": lambda: RecordHeartbeat(**common),
                "progress": lambda: ReportProgress(**common, counters={"numSuccess": 1}),
                "message": lambda: LogRunMessage(**common, status=1, text="m"),
                "child": lambda: SpawnChild(**common, child_job_id="job_c",
                                            child_run_id=f"c{cid()}")}[what]()
        self.apply(made)

    @rule(version=st.none() | st.integers(1, 3))
    def bulk_cancel_of_waiting_runs(self, version: int | None) -> None:
        born = self.state.job.seq
        self.apply(SweepWaitingRuns(command_id=cid(), project_id="p", job_id="j",
                                    issued_at=self.now, operation_id=f"op{cid()}",
                                    job_version=version))
        if self.state.job.deleted:
            return
        assert self.state.job.sweep is None  # the whole backlog was loaded: done
        for run in self.state.runs.values():
            if run.born <= born and version in (None, run.job_version):
                assert run.status not in (S.QUEUED, S.DELAYED), run

    @rule()
    def repeat_last_command_decided_again(self) -> None:
        # What the processor does after losing its state write: decide the same command
        # again. Whatever it yields must still be legal (checked in apply).
        if self.last is not None:
            self.apply(self.last)

    @invariant()
    def seq_is_gapless(self) -> None:
        assert self.state.job.seq == self.events_seen

    @invariant()
    def concurrency_limit_holds(self) -> None:
        if self.limit is not None:
            assert self.state.job.running_count <= self.limit

    @invariant()
    def indexes_agree_with_runs(self) -> None:
        job, runs = self.state.job, self.state.runs
        statuses = [run.status for run in runs.values()]
        assert job.queued_count == statuses.count(S.QUEUED)
        assert job.delayed_count == statuses.count(S.DELAYED)
        assert job.running_count == statuses.count(S.RUNNING) + statuses.count(S.CANCELING)

    @invariant()
    def no_queued_run_waits_behind_free_room_or_a_lower_priority(self) -> None:
        spec, job = self.state.job.spec, self.state.job
        queued = [r for r in self.state.runs.values() if r.status is S.QUEUED]
        if spec is None or not queued:
            return
        # Work-conserving: a queued run only waits while the job's limit is reached, its
        # key's is, or a start gate (window, rate limit) is closed.
        if start_room(job, self.now) == 0:
            return
        for run in queued:
            if spec.max_concurrency is not None and job.running_count >= spec.max_concurrency:
                continue
            if key_held_until(self.state, run, {}, self.now) is not None:
                continue  # its rate key (a metadata value) has no room
            key = run.concurrency_key
            assert key and spec.max_concurrency_per_key is not None, run
            assert self.state.key(key).running >= spec.max_concurrency_per_key

    @invariant()
    def per_key_limit_holds_and_key_records_agree(self) -> None:
        live: dict[str, tuple[int, int]] = {}
        for run in self.state.runs.values():
            queued, running = live.get(run.concurrency_key or "", (0, 0))
            if run.status is S.QUEUED:
                queued += 1
            elif run.status in (S.RUNNING, S.CANCELING):
                running += 1
            live[run.concurrency_key or ""] = (queued, running)
        live = {key: counts for key, counts in live.items() if counts != (0, 0)}
        keys = self.state.keys
        assert {k: (r.queued, r.running) for k, r in keys.items()} == live
        if self.per_key is not None:
            assert all(r.running <= self.per_key for k, r in keys.items() if k)

    @invariant()
    def keys_take_turns(self) -> None:
        # Fairness rounds: within a key, FIFO; a key's queued rounds are distinct and
        # none is behind the job's served round by more than the key's own backlog.
        for key in self.state.keys.values():
            rounds = sorted(run.round for run in self.state.runs.values()
                            if run.status is S.QUEUED and (run.concurrency_key or "") == key.key)
            assert len(set(rounds)) == len(rounds)
            assert all(r < key.next_round for r in rounds)

    @invariant()
    def schedule_follows_the_job(self) -> None:
        job = self.state.job
        assert job.schedule_of == wanted_schedule(job)
        assert (job.next_tick_at is None) == (job.schedule_of is None) or job.spec is None
        if job.next_tick_at and job.last_tick_at:
            assert job.next_tick_at > job.last_tick_at

    @invariant()
    def rate_limit_holds_in_every_window(self) -> None:
        if self.rate is None:
            return
        most, window = self.rate
        for t in self.started:
            assert sum(1 for s in self.started if t <= s < t + timedelta(seconds=window)) <= most

    @invariant()
    def rate_key_limit_holds_per_value(self) -> None:
        if self.per_customer is None:
            return
        most, window = self.per_customer
        for starts in self.started_by_customer.values():
            for t in starts:
                assert sum(1 for s in starts if t <= s < t + timedelta(seconds=window)) <= most

    @invariant()
    def only_accepted_running_attempts_are_watched_for_heartbeats(self) -> None:
        for run in self.state.runs.values():
            if run.heartbeat_due_at is not None:
                assert run.status is S.RUNNING and run.accepted, run

    @invariant()
    def attempts_within_limit(self) -> None:
        for run in self.state.runs.values():
            # Under "latest" a run takes the newest max_attempts: the largest one seen.
            assert 0 <= run.attempt <= self.max_attempts


RunMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40,
                                        deadline=None)
TestRunStateMachine = RunMachine.TestCase

