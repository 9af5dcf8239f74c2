"""The command agent's loop: commands decided in batches, one broker acknowledgement each.

Per batch, in this order (the crash-safety order of the README):

1. the gap guard's read-back, if the stream skipped offsets before a command (tripwire);
2. ``process_commands`` decides the batch in log order, appends all its records and waits
   for one acknowledgement, then answers;
3. the state writes are stored, the last value per key, each to the changelog partition
   of its command, all in one request, and the loop waits until the broker has them
   (``tablewrites``);
4. the events are acked, so faust may commit their offsets.

Step 3 waits itself rather than trusting faust to flush its producer before it commits:
faust 0.15.3's ``ProducerBuffer.flush`` gives up when a record takes over 0.1 s to hand
over and returns with records still buffered, and then commits anyway. In the crash test
that committed commands whose state was never written; the restarted processor did not
see them again, and the next commands took seqs their events already held.

Nothing of a batch is acked unless it was stored. A batch that fails as a whole (a bug
under process_commands' own poison isolation) is decided again one command at a time,
and a command that still fails is dead-lettered alone, as before batching. If state cannot
be stored at all, the process exits without acking (see ``_fatal``): a restart decides
the batch again from the stored state, the case the design already covers.
"""

import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Sequence
from typing import Any, NoReturn, Protocol

import faust
from faust.types import EventT, StreamT

from services.deadletter import dead_letter, encode_dead_letter
from services.processor.gaps import GapGuard
from services.processor.handler import (
    CommandRecord,
    Sink,
    StateStore,
    StateWrites,
    process_commands,
)
from services.processor.tablewrites import BatchWrites

log = logging.getLogger(__name__)


class BatchSink(Sink, Protocol):
    """The handler's Sink, plus what the batch loop hands the producer itself."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None) -> Awaitable[Any]: ...

    async def send_answers(self) -> None:
        """Send the outcomes the handler answered (``Sink.answer``)."""

RETRY_FIRST_SECS = 0.1
RETRY_MAX_SECS = 5.0
STATS_EVERY_SECS = 60.0


async def ready_batches(stream: StreamT, max_: int) -> AsyncGenerator[list[EventT], None]:
    """The stream's events in batches: all that are ready, up to ``max_``, as soon as one
    is. A batch never waits for more events (no latency added when idle); under load it
    holds what queued up while the previous batch was decided.

    Unlike faust's ``take_events`` it never acks (that one acks the whole batch in a
    ``finally``, even when the batch failed): the caller acks each event once stored.
    """
    stream.enable_acks = False
    ready: asyncio.Queue[EventT] = asyncio.Queue(maxsize=max_)

    async def pump() -> None:
        async for event in stream.events():
            await ready.put(event)

    pumping = asyncio.ensure_future(pump())
    try:
        while True:
            if ready.empty():
                getting = asyncio.ensure_future(ready.get())
                await asyncio.wait({getting, pumping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    pumping.result()  # raises whatever ended the stream
                    return
                batch = [getting.result()]
            else:
                batch = [ready.get_nowait()]
            while len(batch) < max_ and not ready.empty():
                batch.append(ready.get_nowait())
            yield batch
    finally:
        pumping.cancel()


def _fatal(what: str, exc: BaseException) -> NoReturn:
    """Stop the process now, acking nothing more: faust would otherwise go on past
    commands whose state is not stored (an agent that raises leaves them unacked and its
    partition's commit frozen; take_events would ack them). After a restart they are
    decided again from the stored state and yield the same events."""
    log.critical("%s: %s: %s; exiting so that the batch is decided again after a restart",
                 what, type(exc).__name__, exc, exc_info=exc)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(70)


class CommandBatches:
    """Decides, appends and stores one batch of command events; never raises."""

    def __init__(self, store: StateStore, sink: BatchSink, writes: BatchWrites,
                 guard: GapGuard, letters: faust.TopicT) -> None:
        self.store, self.sink, self.writes = store, sink, writes
        self.guard, self.letters = guard, letters
        self.batches = self.commands = self.largest = 0
        self._logged_at = time.monotonic()

    def _count(self, size: int) -> None:
        self.batches += 1
        self.commands += size
        self.largest = max(self.largest, size)
        if time.monotonic() - self._logged_at >= STATS_EVERY_SECS:
            self._logged_at = time.monotonic()
            log.info("%d commands decided in %d batches (largest %d); %d state records "
                     "written, %d superseded within a batch; gap tripwire fired %d times",
                     self.commands, self.batches, self.largest, self.writes.sent,
                     self.writes.superseded, self.guard.fired)

    async def handle(self, events: Sequence[EventT]) -> None:
        records: list[CommandRecord] = []
        owners: list[EventT] = []  # the event whose partition each record belongs to
        for event in events:
            message = event.message
            for offset, raw in await self._missing(message.partition, message.offset):
                records.append(CommandRecord(raw, message.topic, message.partition, offset))
                owners.append(event)
            records.append(CommandRecord(event.value, message.topic, message.partition,
                                         message.offset))
            owners.append(event)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("batch %s", [(r.partition, r.offset) for r in records])
        self._count(len(records))
        try:
            changes = await process_commands(records, self.store, self.sink)
        except Exception:
            log.exception("a batch of %d commands failed; deciding them one at a time",
                          len(records))
            await self._one_by_one(records, owners)
            return
        await self.sink.send_answers()
        await self._store(changes, owners)

    async def _missing(self, partition: int, offset: int) -> list[tuple[int, bytes]]:
        delay = RETRY_FIRST_SECS
        while True:
            try:
                return await self.guard.missing(partition, offset)
            except Exception as exc:  # the broker is away: wait, skip nothing
                log.warning("checking offsets failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECS)

    async def _store(self, changes: Sequence[StateWrites], owners: Sequence[EventT]) -> None:
        try:
            if len(changes) != len(owners):
                raise RuntimeError(f"{len(changes)} state changes for {len(owners)} commands")
            self.writes.collect()
            for change, owner in zip(changes, owners, strict=True):
                self.writes.event = owner
                change.apply_to(self.store)
            self.writes.event = None
            await self.writes.write(self.sink.send)
        except Exception as exc:
            _fatal("storing a batch's state failed", exc)

    async def _one_by_one(self, records: Sequence[CommandRecord],
                          owners: Sequence[EventT]) -> None:
        for record, owner in zip(records, owners, strict=True):
            try:
                changes = await process_commands([record], self.store, self.sink)
            except Exception as exc:
                # process_commands isolates poison itself; this is the net under a bug in
                # that isolation, so that even then one record cannot stop the stream.
                letter = dead_letter("processor", exc, "dropped: the processor failed on it",
                                     topic=record.topic, partition=record.partition,
                                     offset=record.offset, value=record.value)
                try:
                    await self.letters.send(value=encode_dead_letter(letter))
                except Exception:  # logged by dead_letter already; the loop goes on
                    log.exception("writing a dead letter failed")
                continue
            await self.sink.send_answers()
            await self._store(changes, [owner] * len(changes))
