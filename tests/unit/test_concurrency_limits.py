"""Concurrency keys through the processor: per-key limits, keys taking turns, and what a
command loads when one key has a long backlog (the real TableStore and its index)."""

import asyncio
from typing import Any, cast

from faust.types import TableT
from hypothesis import given, settings
from hypothesis import strategies as st

from events import decode_dispatch
from services.domain import (
    KeyState,
    RunState,
    RunStatus,
    dispatch_order,
    encode_command,
    lane_of,
)
from services.domain.handle import dispatchable, handle
from services.processor.handler import process_command, process_commands
from services.processor.ports import TableStore
from services.processor.statecodec import decode_key, decode_run
from tests.unit.domain_support import T0, create, empty, succeed, trigger
from tests.unit.test_processor_handler import MemorySink


class CountingStore(TableStore):
    """The processor's store over dicts, counting the run records it reads."""

    def __init__(self) -> None:
        super().__init__(*cast(list[TableT], [cast(Any, {}) for _ in range(4)]))
        self.run_reads = 0

    def get_run(self, run_id: str) -> RunState | None:
        self.run_reads += 1
        return super().get_run(run_id)


async def _run(store: TableStore, sink: MemorySink, *commands: Any) -> None:
    for command in commands:
        await process_command(encode_command(command), store, sink)


async def _batch(store: TableStore, sink: MemorySink, *commands: Any) -> None:
    """One batch of commands, stored once the log has them (as the processor does)."""
    for writes in await process_commands([encode_command(c) for c in commands], store, sink):
        writes.apply_to(store)


def _dispatched(sink: MemorySink) -> list[str]:
    return [decode_dispatch(raw).run_id for raw in sink.orders]


async def test_a_second_key_is_not_starved_by_a_long_backlog_of_the_first() -> None:
    store, sink = CountingStore(), MemorySink()
    await _run(store, sink, create(max_concurrency=1))
    await _batch(store, sink, *(trigger(f"a{i}", concurrency_key="A") for i in range(1000)))
    await _run(store, sink, *(trigger(f"b{i}", concurrency_key="B") for i in range(3)))
    # One at a time: each finished run lets the next start.
    for _ in range(7):
        await _run(store, sink, succeed(_dispatched(sink)[-1]))
    started = _dispatched(sink)
    assert started[:8] == ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "a4"]


async def test_a_full_key_costs_nothing_to_a_trigger_of_another_key() -> None:
    store, sink = CountingStore(), MemorySink()
    await _run(store, sink, create(max_concurrency_per_key=1))
    await _batch(store, sink, *(trigger(f"a{i}", concurrency_key="A") for i in range(3000)))
    assert _dispatched(sink) == ["a0"]
    store.run_reads = 0
    await _run(store, sink, trigger("b0", concurrency_key="B"))
    assert _dispatched(sink) == ["a0", "b0"]
    assert store.run_reads <= 2  # the named run only: A's 2,999 queued runs are not read
    # When a0 ends, A's next run starts, still without reading A's backlog.
    store.run_reads = 0
    await _run(store, sink, succeed("a0"))
    assert _dispatched(sink)[-1] == "a1"
    assert store.run_reads <= 4


async def test_key_records_live_only_while_a_key_has_runs() -> None:
    store, sink = CountingStore(), MemorySink()
    await _run(store, sink, create(), trigger("r1", concurrency_key="K"))
    assert decode_key(store.keys[b"j\x1fK"]) == KeyState(job_id="j", key="K", running=1,
                                                         next_round=1)
    await _run(store, sink, succeed("r1"))
    assert b"j\x1fK" not in store.keys


def test_the_core_refuses_candidates_beyond_a_keys_limit() -> None:
    # The index is an optimisation: the core holds every run here and still starts one
    # per key.
    state = handle(empty(), create(max_concurrency_per_key=1)).state
    for i, key in enumerate(["A", "A", "B", None, None]):
        state = handle(state, trigger(f"r{i}", concurrency_key=key)).state
    running = sorted(r.run_id for r in state.runs.values() if r.status is RunStatus.RUNNING)
    assert running == ["r0", "r2", "r3", "r4"]  # keyless runs have no per-key limit
    assert dispatchable(state, T0) == []


def _reference(runs: list[RunState], keys: dict[str, int], per_key: int | None,
               limit: int) -> list[str]:
    found: list[str] = []
    taken: dict[str, int] = {}
    for run in sorted((r for r in runs if r.status is RunStatus.QUEUED), key=dispatch_order):
        key = lane_of(run)
        if per_key is not None and key:
            if keys.get(key, 0) + taken.get(key, 0) >= per_key:
                continue
            taken[key] = taken.get(key, 0) + 1
        found.append(run.run_id)
    return found[:limit]


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["trigger", "finish"]),
                                st.sampled_from([None, "a", "b", "c"]),
                                st.integers(-1, 1)), max_size=40),
       per_key=st.none() | st.integers(1, 2), limit=st.none() | st.integers(1, 4))
def test_the_index_rebuilt_after_a_rebalance_gives_the_live_order(
        steps: list[tuple[str, str | None, int]], per_key: int | None,
        limit: int | None) -> None:
    async def scenario() -> None:
        store, sink = CountingStore(), MemorySink()
        await _run(store, sink, create(max_concurrency=limit,
                                       max_concurrency_per_key=per_key))
        store.stale = False  # the live index from here on
        for n, (kind, key, priority) in enumerate(steps):
            if kind == "trigger":
                await _run(store, sink, trigger(f"r{n}", priority=priority,
                                                concurrency_key=key))
            elif running := [r for r in map(decode_run, store.runs.values())
                             if r.status is RunStatus.RUNNING]:
                await _run(store, sink, succeed(running[0].run_id))
        live = store.waiting("j", 50, per_key)
        runs = [decode_run(raw) for raw in store.runs.values()]
        keys = {k.key: k.running for k in map(decode_key, store.keys.values())}
        assert live == _reference(runs, keys, per_key, 50)
        store.stale = True  # a rebalance: the indexes are rebuilt from the tables
        assert store.waiting("j", 50, per_key) == live

    asyncio.run(scenario())


def test_priority_comes_before_turns_and_a_returning_key_gets_no_credit() -> None:
    state = handle(empty(), create(max_concurrency=1)).state
    for i in range(5):
        state = handle(state, trigger(f"a{i}", concurrency_key="A")).state
    state = handle(state, trigger("b0", concurrency_key="B")).state
    state = handle(state, trigger("hi", concurrency_key="C", priority=5)).state
    order = [r.run_id for r in sorted((r for r in state.runs.values()
                                       if r.status is RunStatus.QUEUED), key=dispatch_order)]
    assert order == ["hi", "b0", "a1", "a2", "a3", "a4"]
    # a0 ran; A's runs queued rounds 1..4; B's first run took the served round (0).
    assert [state.runs[f"a{i}"].round for i in range(5)] == [0, 1, 2, 3, 4]
    assert state.runs["b0"].round == 0
