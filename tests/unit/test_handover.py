"""The processor's faust hand-over (services/processor/handover.py) on stand-ins for
faust's app and consumer: what it resumes, and when it must not."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from services.processor.handover import HandoverRecovery

COMMANDS = TP("jobledger.commands", 0)


class Consumer:
    def __init__(self, during_seek: Callable[[], None]) -> None:
        self.during_seek = during_seek
        self._read_offset = {COMMANDS: 5}
        self._buffered_partitions: set[TP] = set()
        self.resumed: list[set[TP]] = []
        self.flow_resumed = False

    def assignment(self) -> set[TP]:
        return {COMMANDS}

    def pause_partitions(self, tps: set[TP]) -> None:
        pass

    async def perform_seek(self) -> None:
        self.during_seek()

    def resume_flow(self) -> None:
        self.flow_resumed = True

    def resume_partitions(self, tps: set[TP]) -> None:
        self.resumed.append(set(tps))


def recovery_with(during_seek: Callable[[Any], None]) -> tuple[Any, Consumer]:
    """A HandoverRecovery's own methods on stand-ins for what it touches of faust."""
    app: Any = SimpleNamespace(consumer_generation_id=7, rebalancing_count=3,
                               conf=SimpleNamespace(broker_request_timeout=1.0))
    consumer = Consumer(lambda: during_seek(app))

    async def no_signal() -> None:
        pass

    async def started() -> None:
        pass

    app.consumer = consumer
    app.on_rebalance_complete = SimpleNamespace(send=no_signal)
    app.flow_control = SimpleNamespace(resume=lambda: None)
    app._fetcher = SimpleNamespace(maybe_start=started)
    app.assignor = SimpleNamespace(assigned_standbys=lambda: [])
    app.on_rebalance_end = lambda: None

    async def wait(work: Awaitable[None], timeout: float) -> None:
        await work

    recovery: Any = SimpleNamespace(
        app=app, log=logging.getLogger("test"), tables={}, completed=asyncio.Event(),
        actives_for_table={}, standbys_for_table={}, _set_recovery_ended=lambda: None,
        _is_changelog_tp=lambda tp: False, _wait=wait,
        )
    recovery.tables = SimpleNamespace(values=lambda: [], on_actives_ready=lambda: None,
                                      on_standbys_ready=lambda: None)
    for name in ("_stream_tps", "_hold", "_superseded"):
        setattr(recovery, name, getattr(HandoverRecovery, name).__get__(recovery))
    return recovery, consumer


async def test_the_streams_are_handed_over_after_the_seek() -> None:
    recovery, consumer = recovery_with(lambda app: None)
    await HandoverRecovery.on_recovery_completed(recovery, 7)
    assert consumer.resumed == [{COMMANDS}] and consumer.flow_resumed
    assert recovery.completed.is_set()


async def test_a_revocation_during_the_seek_keeps_the_streams_held() -> None:
    # faust counts the rebalance when the revocation starts; the generation is still 7.
    def revoke(app: Any) -> None:
        app.rebalancing_count += 1

    recovery, consumer = recovery_with(revoke)
    await HandoverRecovery.on_recovery_completed(recovery, 7)
    assert consumer.resumed == [] and not consumer.flow_resumed
    assert not recovery.completed.is_set()


async def test_a_new_generation_during_the_seek_keeps_the_streams_held() -> None:
    def assign(app: Any) -> None:
        app.consumer_generation_id = 8

    recovery, consumer = recovery_with(assign)
    await HandoverRecovery.on_recovery_completed(recovery, 7)
    assert consumer.resumed == []
