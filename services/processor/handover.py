"""The restart hand-over of faust-streaming 0.15.3, in an order that loses no command.

After a rebalance faust pauses every assigned partition, restores the tables from their
changelogs, and then ``Recovery.on_recovery_completed`` hands the stream partitions over
to the agents. In 0.15.3 it does so in this order:

1. ``resume_partitions(stream partitions)``: the fetcher starts delivering commands from
   aiokafka's position into the agents' queues at once;
2. ``await perform_seek()``: the position and faust's read offset are reset to the
   committed offset while those deliveries go on. ``_drain_messages`` sets the read
   offset *after* each delivery callback returns, so a delivery that was in flight
   overwrites the reset; records up to it are then dropped as already read ("DROPPED
   MESSAGE ROFF") when they are fetched again, or a later record is taken for a
   compacted-topic gap and ``_add_gap`` counts records never delivered as acked;
3. ``flow_control.resume()``: clears the agents' queues, which now hold commands
   delivered in step 1 that are neither handled nor acked.

Seen in the crash test with small fetches: the stream skipped commands (only the gap
guard's read-back saved them), faust committed past commands it never delivered, and a
partition's commit froze for the rest of the process (a command cleared from a queue is
never acked, and faust commits only up to the first unacked offset). faust-streaming's
own threads #216/#217, #241 and #253 moved these calls back and forth.

The order here: the stream partitions stay paused (and out of the consumer's buffer-full
set, from which a draining queue would resume them during recovery) until the seek and
the flow-control resume are done; nothing of the new generation can be in flight, so the
reset read offsets stand, and the first command delivered is the committed one. As a
tripwire the read offsets are checked, and restored, right before the partitions resume.

A second fault sits under the hand-over. faust fetches in the Kafka client's thread and
passes it the *live* set of active partitions as the filter (``_wait_next_records``).
Right after recovery that set is empty (changelogs paused, streams not yet resumed), and
aiokafka reads an empty filter as "every partition": a fetch in progress hands back the
records it had prefetched for the paused command partitions, moving their positions, and
faust drops them (not active). With the seek done first, nothing moved them back: the
crash test saw the stream start 30 to 150 offsets past the committed one. Each fetch here
gets a snapshot of the set, and faust yields exactly what it asked for.

It overrides private faust methods, so it is pinned: ``check_pinned`` refuses to run on
any other faust version, or if a method it replaces is not the one it was written for.
Applied in one place: the processor's app is a ``HandoverApp``.
"""

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, cast

import faust
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer as BaseConsumer
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.types.transports import TransportT

log = logging.getLogger(__name__)

FAUST_VERSION = "0.15.3"
# The methods replaced here, with the sha256 of their source in faust-streaming 0.15.3
# (first 16 hex digits).
REPLACED: dict[Callable[..., Any], str] = {
    Recovery.on_recovery_completed: "6ef567acf072e46d",
    BaseConsumer._wait_next_records: "6218e1969a636b3f",
    faust.App._new_transport: "42db531312dd776f",
}


class FaustVersionMismatch(RuntimeError):
    pass


def check_pinned() -> None:
    """Refuse to start on a faust this hand-over was not written for."""
    if faust.__version__ != FAUST_VERSION:
        raise FaustVersionMismatch(
            f"services/processor/handover.py patches faust-streaming {FAUST_VERSION}, "
            f"found {faust.__version__}: check the recovery hand-over of that version "
            f"(faust/tables/recovery.py on_recovery_completed) and update the patch")
    for method, digest in REPLACED.items():
        source = inspect.getsource(method)
        if hashlib.sha256(source.encode()).hexdigest()[:16] != digest:
            raise FaustVersionMismatch(
                f"faust's {method.__qualname__} is not the 0.15.3 one this hand-over "
                f"replaces; check services/processor/handover.py against it")


class HandoverRecovery(Recovery):
    """faust's Recovery with the stream hand-over in a safe order (see the module)."""

    def _stream_tps(self, tps: Iterable[TP]) -> set[TP]:
        return {tp for tp in tps if not self._is_changelog_tp(tp)}

    def _hold(self, tps: set[TP]) -> None:
        consumer = self.app.consumer
        consumer.pause_partitions(tps)
        # A partition whose agent queue ran full sits in this set, and when that queue
        # drains ``Consumer.on_buffer_drop`` puts it back among the active partitions,
        # paused or not: it would be fetched during recovery.
        cast(Any, consumer)._buffered_partitions.difference_update(tps)

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP],
                           newly_assigned: set[TP], generation_id: int = 0) -> None:
        # App._on_partitions_assigned has paused everything just before this call.
        self._hold(self._stream_tps(assigned))
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        app = cast(Any, self.app)
        consumer = app.consumer
        # faust counts a rebalance the moment a revocation starts (synchronously, in the
        # client's callback); the generation changes only once the next one is assigned.
        rebalances = app.rebalancing_count
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [asyncio.ensure_future(table.on_recovery_completed(
            self.actives_for_table[table], self.standbys_for_table[table]))
            for table in self.tables.values()]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self._superseded(generation_id, rebalances):
            return
        streams = self._stream_tps(assignment)
        self._hold(streams)  # still paused: nothing is delivered from them yet
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(),
                             timeout=app.conf.broker_request_timeout)
        # A revocation that began during the seek: resuming now would hand the stream
        # commands fetched for partitions about to move, decided while the next
        # generation's recovery rewrites the tables under them (a job's state set back
        # behind the events already on the log). The next generation hands over instead.
        if self._superseded(generation_id, rebalances):
            return
        seeked = {tp: consumer._read_offset[tp] for tp in streams}
        self.completed.set()
        # Clears the agents' queues: they can hold only records of an earlier generation,
        # which the stream would skip anyway; this generation's start at the committed
        # offset once the partitions resume below.
        app.flow_control.resume()
        consumer.resume_flow()
        overwritten = {tp: (offset, consumer._read_offset[tp])
                       for tp, offset in seeked.items()
                       if consumer._read_offset[tp] != offset}
        if overwritten:  # cannot happen with the partitions paused; restore and say so
            log.error("faust hand-over: read offsets changed after the seek %s; restored",
                      overwritten)
            consumer._read_offset.update(seeked)
        # No await between the check above and the resume: nothing can run in between.
        consumer.resume_partitions(streams)
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    def _superseded(self, generation_id: int, rebalances: int) -> bool:
        app = cast(Any, self.app)
        if (app.consumer_generation_id, app.rebalancing_count) == (generation_id, rebalances):
            return False
        self.log.warning("Recovery of generation %s superseded (now generation %s, "
                         "rebalance %s): not handing the streams over", generation_id,
                         app.consumer_generation_id, app.rebalancing_count)
        return True


class HandoverTableManager(TableManager):
    """faust's TableManager with the HandoverRecovery (``TableManager=`` app setting)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = HandoverRecovery(self.app, self, beacon=self.beacon,
                                              loop=self.loop)
        return self._recovery


class HandoverConsumer(driver.Consumer):
    """faust's aiokafka consumer, fetching with a snapshot of its active partitions."""

    async def _wait_next_records(self, timeout: float) -> tuple[RecordMap | None,
                                                                set[TP] | None]:
        # As faust 0.15.3's, but the set is copied: it changes under the client's thread
        # while the fetch waits, and when it empties the client returns every partition.
        if not self.flow_active:
            await self.wait(cast(Any, self.can_resume_flow))
        try:
            self.not_waiting_next_records.set()
            if self.app.client_only:
                return await self._getmany(active_partitions=None, timeout=timeout), None
            active = set(self._get_active_partitions())
            if not active:
                await self.sleep(1)  # release the loop; nothing may be fetched
                return {}, active
            return await self._getmany(active_partitions=active, timeout=timeout), active
        finally:
            self.not_waiting_next_records.set()


class HandoverTransport(driver.Transport):
    Consumer = HandoverConsumer


class HandoverApp(faust.App):
    """The processor's faust app: the hand-over fixes of this module (``check_pinned``
    first)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_pinned()
        kwargs.setdefault("TableManager", HandoverTableManager)
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        url = self.conf.broker_consumer
        if url[0].scheme not in ("kafka", "aiokafka"):
            raise ValueError(f"the hand-over fix is for faust's aiokafka driver, not {url}")
        return HandoverTransport(url, self)
