"""Commands one stream's decision sends to others: dependency triggers, child runs, the
cancel of a parent reaching its children; and the rules on the deciding side."""

from typing import Any

from events.types import (
    JobCreated,
    JobDependentAdded,
    RunDispatched,
    RunTriggered,
)
from services.domain import CancelRun, TriggerRun, handle
from services.domain.commands import AddDependent, RemoveDependent, SpawnChild
from services.domain.operations.followups import dependency_run_id
from services.domain.state import MAX_LINEAGE_DEPTH
from tests.unit.domain_support import T0, at, cancel, cid, fail, given, spec, succeed


def running(depth: int = 0, **fields: Any) -> list[Any]:
    return [(None, JobCreated(spec=spec(**fields))),
            ("r1", RunTriggered(lineage_depth=depth)),
            ("r1", RunDispatched(attempt=1, endpoint_url="http://e.example/x",
                                 deadline_at=at(60), at=T0))]


def depends(downstream: str, condition: str) -> tuple[None, JobDependentAdded]:
    return (None, JobDependentAdded(downstream_job_id=downstream, condition=condition))


def spawn(child: str, attempt: int = 1) -> SpawnChild:
    return SpawnChild(command_id=cid(), project_id="p", job_id="j", issued_at=at(1),
                      run_id="r1", attempt=attempt, child_job_id="job_c", child_run_id=child,
                      run_type="export", payload={"page": 1})


def test_an_ending_run_triggers_the_dependents_its_end_satisfies() -> None:
    state = given([*running(), depends("job_ok", "on_success"),
                   depends("job_bad", "on_failure"), depends("job_any", "on_completion")])
    done = handle(state, succeed(result={"rows": 3}))
    triggered = {c.job_id: c for c in done.followups if isinstance(c, TriggerRun)}
    assert set(triggered) == {"job_ok", "job_any"}
    run = triggered["job_ok"]
    assert (run.parent_run_id, run.triggered_by, run.lineage_depth) == ("r1", "dependency", 1)
    assert run.run_id == dependency_run_id("r1", "job_ok")
    assert run.payload["upstream"]["result"] == {"rows": 3}
    # Deciding the same command again sends the same commands (ids included).
    assert handle(state, succeed(result={"rows": 3})).followups != []
    failed = handle(state, fail(retryable=False))
    assert {c.job_id for c in failed.followups} == {"job_bad", "job_any"}
    # A retry is not an end: nothing runs after it yet.
    assert handle(state, fail()).followups == []


def test_a_cancel_triggers_no_dependent_and_the_depth_limit_stops_a_loop() -> None:
    state = given([*running(), depends("job_any", "on_completion")])
    assert handle(state, cancel()).followups == []
    deep = given([*running(depth=MAX_LINEAGE_DEPTH), depends("job_any", "on_completion")])
    assert handle(deep, succeed()).followups == []


def test_a_spawned_child_is_triggered_on_its_job_and_a_cancel_reaches_it() -> None:
    state = given(running(depth=2))
    spawned = handle(state, spawn("run_child"))
    [child] = spawned.followups
    assert isinstance(child, TriggerRun) and child.job_id == "job_c"
    assert (child.run_id, child.parent_run_id, child.lineage_depth, child.run_type) == (
        "run_child", "r1", 3, "export")
    assert handle(spawned.state, spawn("run_child")).answer.rejected
    canceled = handle(spawned.state, cancel(now=at(2)))
    [stop] = canceled.followups
    assert isinstance(stop, CancelRun) and (stop.job_id, stop.run_id) == ("job_c", "run_child")
    assert stop.by_system


def test_a_late_spawn_is_rejected() -> None:
    state = handle(given(running()), fail(now=at(1))).state  # attempt 1 over
    outcome = handle(state, spawn("run_late"))
    assert outcome.answer.rejected and outcome.answer.code == "conflict"
    assert outcome.followups == []


def test_a_child_canceled_by_its_parent_is_system_canceled() -> None:
    state = given([(None, JobCreated(spec=spec())), ("r1", RunTriggered())])
    stop = CancelRun(command_id=cid(), project_id="p", job_id="j", issued_at=T0, run_id="r1",
                     by_system=True, reason="parent run rp canceled")
    [(_, event)] = handle(state, stop).events
    assert event.code == "JOB_SYSTEM_CANCELED"


def test_dependents_are_added_replaced_and_removed() -> None:
    state = given([(None, JobCreated(spec=spec()))])

    def add(downstream: str, condition: str = "on_success") -> AddDependent:
        return AddDependent(command_id=cid(), project_id="p", job_id="j", issued_at=T0,
                            downstream_job_id=downstream, condition=condition)

    state = handle(state, add("job_b")).state
    state = handle(state, add("job_b", "on_failure")).state
    assert state.job.dependents == {"job_b": "on_failure"}
    assert handle(state, add("job_b", "on_failure")).events == []
    assert handle(state, add("j")).answer.rejected  # itself
    remove = RemoveDependent(command_id=cid(), project_id="p", job_id="j", issued_at=T0,
                             downstream_job_id="job_b")
    state = handle(state, remove).state
    assert state.job.dependents == {}
    assert handle(state, remove).answer.code == "not_found"
