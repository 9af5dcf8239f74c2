"""Rebuild the read models from the log into a new generation, then switch to it.

While the live generation keeps serving (the projector writes it, the API reads it), this
replays the events topic from offset 0 with its own consumer (every partition assigned by
hand, no consumer group, nothing committed) into a new, empty generation, with the same
code the projector uses (``Projector.project``: ``apply_batch`` with its offsets in the
same transaction, poison isolation). Once it has read every partition up to the end
offsets the broker reports, it moves the pointer (projections.generations); the projector
and the API notice within about a second and reopen on the new generation, the projector
resuming from the offsets stored in it. After ``grace_secs`` the old generation (SQLite:
its files; PostgreSQL: its schema) is deleted (a reader that had not noticed yet would
lose it, so the grace is several times the services' one-second look).

A record that fails alone is passed over as the projector passes it over (its offset
consumed, its job's position moved past it); it is not put on the dead-letter topic a
second time: the live projector did that when it first met it.

On any failure the new generation is deleted and the old one goes on serving.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from projections.db import make_engine
from projections.generations import Generation, generations_for
from projections.migrate import migrate
from projections.projector import Record
from projections.rebuild_progress import Progress, caught_up, events_behind
from services.config import Settings
from services.kafka import make_consumer, topic_partitions, wait_for_broker
from services.projector.app import MAX_BATCH, Projector

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECS = 1.0
GRACE_SECS = 5.0
FETCH_MS = 200
# Under a steady stream of new events the rebuild may never see the end exactly: once it
# is this close for NEAR_CHECKS looks in a row it switches, and the live projector applies
# the rest in the new generation (it resumes from the offsets stored there).
NEAR_EVENTS = 100
NEAR_CHECKS = 3


class _PassOverQuietly:
    """The letters sender of a rebuild: a poisoned record was dead-lettered by the live
    projector already; count it, send nothing."""

    def __init__(self) -> None:
        self.passed_over = 0

    async def send(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.passed_over += 1


@dataclass(frozen=True, slots=True)
class Rebuilt:
    old: Generation
    new: Generation
    records: int
    events: int
    passed_over: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / max(self.seconds, 1e-9)


async def rebuild(settings: Settings, out: Callable[[str], None] = print,
                  grace_secs: float = GRACE_SECS) -> Rebuilt:
    """Replay, switch, remove the old generation; raise (the old one still live) on
    failure. ``out`` gets the progress lines."""
    generations = generations_for(settings.database_url)
    try:
        async with generations.lock():
            old, new = await generations.live(), await generations.prepare()
            out(f"rebuild: {old.name} serves; replaying {settings.topics.events} into "
                f"{new.name}")
            try:
                rebuilt = await _replay(settings, old, new, out)
            except BaseException:
                # The failure is what to report; a new generation left behind (the
                # database away meanwhile) is dropped by the next rebuild's prepare.
                with contextlib.suppress(Exception):
                    await generations.remove(new)
                raise
            await generations.switch(new)
        skipped = (f", {rebuilt.passed_over} records that cannot be applied passed over"
                   if rebuilt.passed_over else "")
        out(f"rebuild: switched to {new.name} ({rebuilt.events} events in "
            f"{rebuilt.seconds:.1f} s, {rebuilt.rate:,.0f} records/s{skipped}); removing "
            f"{old.name} in {grace_secs:g} s")
        await asyncio.sleep(grace_secs)
        try:
            await generations.remove(old)
        except Exception as exc:  # switched all the same: the rebuild did its work
            # (PostgreSQL: a reader that outlived the grace holds the old tables.)
            out(f"rebuild: removing {old.name} failed ({type(exc).__name__}: {exc}); the "
                "next rebuild removes it")
        return rebuilt
    finally:
        await generations.close()


async def _replay(settings: Settings, old: Generation, new: Generation,
                  out: Callable[[str], None]) -> Rebuilt:
    topic = settings.topics.events
    await wait_for_broker(settings.kafka_bootstrap)
    engine = make_engine(new.url)
    consumer = make_consumer(settings.kafka_bootstrap)
    try:
        await migrate(engine)
        await consumer.start()
        tps = await topic_partitions(settings.kafka_bootstrap, topic)
        if not tps:
            raise RuntimeError(f"the events topic {topic} does not exist (yet)")
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        letters = _PassOverQuietly()
        projector = Projector(engine, topic, letters, settings.topics.deadletter)
        progress = Progress(started=time.monotonic())
        shown, near = progress.started, 0
        while True:
            records = await _fetch(consumer)
            if records:
                progress.read += len(records)
                progress.applied += await projector.project(records)
            now = time.monotonic()
            if records and now - shown < PROGRESS_EVERY_SECS:
                continue
            # The live end moves while events arrive: ask for it each time we look.
            ends = {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
            positions = {tp.partition: await consumer.position(tp) for tp in tps}
            behind = events_behind(positions, ends)
            if now - shown >= PROGRESS_EVERY_SECS:
                out(progress.line(now, behind))
                shown = now
            near = near + 1 if behind <= NEAR_EVENTS else 0
            if caught_up(positions, ends) or near >= NEAR_CHECKS:
                break
        seconds = time.monotonic() - progress.started
        out(progress.line(time.monotonic(), behind))
        return Rebuilt(old, new, progress.read, progress.applied, letters.passed_over,
                       seconds)
    finally:
        await consumer.stop()
        await engine.dispose()


async def _fetch(consumer: AIOKafkaConsumer) -> list[Record]:
    batches = await consumer.getmany(timeout_ms=FETCH_MS, max_records=MAX_BATCH)
    return [(r.partition, r.offset, r.value) for rs in batches.values() for r in rs]
