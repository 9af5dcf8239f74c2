"""TriggerRuns: a bulk trigger decided item by item in one decision (the pure core, and
the processor's one answer for it)."""

import asyncio

from msgspec.structs import replace

from services.domain import (
    DisableJob,
    RunStatus,
    TriggerRun,
    TriggerRuns,
    encode_command,
    handle,
)
from services.outcomes import decode_outcome
from services.processor.handler import process_commands
from tests.unit.domain_support import T0, cid, create, empty, trigger
from tests.unit.test_processor_handler import MemorySink, MemoryStore


def bulk(*items: TriggerRun) -> TriggerRuns:
    return TriggerRuns(command_id=cid(), project_id="p", job_id="j", issued_at=T0,
                       items=list(items))


def keyed(run_id: str, key: str) -> TriggerRun:
    return replace(trigger(run_id), idempotency_key=key)


def test_each_item_makes_its_run_and_the_runs_start_as_their_own_triggers_would() -> None:
    state = handle(empty(), create(max_concurrency=2)).state
    decision = handle(state, bulk(trigger("r1"), trigger("r2"), trigger("r3")))
    assert [(a.run_id, a.rejected, a.idempotency_hit) for a in decision.answer.items or []] == [
        ("r1", False, False), ("r2", False, False), ("r3", False, False)]
    statuses = {rid: run.status for rid, run in decision.state.runs.items()}
    assert statuses == {"r1": RunStatus.RUNNING, "r2": RunStatus.RUNNING,
                        "r3": RunStatus.QUEUED}
    # One seq per event, in order, as one command's decision.
    assert decision.answer.seq == state.job.seq + len(decision.events)


def test_items_see_the_runs_the_earlier_items_made() -> None:
    state = handle(empty(), create()).state
    decision = handle(state, bulk(keyed("r1", "k"), keyed("r2", "k"), trigger("r1")))
    first, repeat, clash = decision.answer.items or []
    assert (first.run_id, first.idempotency_hit) == ("r1", False)
    assert (repeat.run_id, repeat.idempotency_hit) == ("r1", True)  # the key's run
    assert clash.rejected and clash.code == "conflict"
    assert set(decision.state.runs) == {"r1"}


def test_a_disabled_job_rejects_every_item_and_records_nothing() -> None:
    state = handle(empty(), create()).state
    state = handle(state, DisableJob(command_id=cid(), project_id="p", job_id="j",
                                     issued_at=T0)).state
    decision = handle(state, bulk(trigger("r1"), trigger("r2")))
    assert decision.events == [] and decision.state.runs == {}
    assert [(a.rejected, a.code) for a in decision.answer.items or []] == [
        (True, "conflict"), (True, "conflict")]


def test_an_item_of_another_job_is_rejected_alone() -> None:
    state = handle(empty(), create()).state
    stray = replace(trigger("r2"), job_id="other")
    decision = handle(state, bulk(trigger("r1"), stray))
    ok, refused = decision.answer.items or []
    assert not ok.rejected and refused.rejected and refused.code == "invalid"
    assert set(decision.state.runs) == {"r1"}


def test_the_processor_answers_a_bulk_once_with_every_item() -> None:
    store, sink = MemoryStore(), MemorySink()

    async def decide_all() -> None:
        for raw in (encode_command(create()),
                    encode_command(bulk(*(trigger(f"r{i}") for i in range(50))))):
            for change in await process_commands([raw], store, sink):
                change.apply_to(store)

    asyncio.run(decide_all())
    outcome = decode_outcome(sink.outcomes[-1])
    assert [item.run_id for item in outcome.items or []] == [f"r{i}" for i in range(50)]
    assert len(sink.outcomes) == 2  # the create's, the bulk's: not one per run
    assert len(sink.orders) == 50 and set(store.runs) == {f"r{i}" for i in range(50)}
