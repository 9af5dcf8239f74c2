"""Consume the events topic and apply it to the read models.

No consumer group: the projector assigns itself every partition and resumes from the
offsets stored in the database, which are committed with the rows they produced.

Each fetched batch is applied in one transaction (projections.projector.apply_batch, run
by services.projector.transactions).

Poison isolation: a batch that fails is retried whole while the database itself is away
(a passing fault), and otherwise applied again one record per transaction; a record that
fails alone while the database answers is recorded on the dead-letter topic and passed
over, and the projector goes on.

Visibility: after each committed batch the projector announces the positions it moved on
``<prefix>.projected`` (projections.notices), fire and forget, so readers waiting for an
event to become visible need not poll the database.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.live_store import LiveStore
from projections.notices import encode_projected
from projections.projector import (
    Applied,
    Record,
    apply_batch_sync,
    load_offsets,
    seconds_behind,
    skip_record_sync,
)
from services.config import Settings
from services.deadletter import dead_letter, encode_dead_letter
from services.delivery import Delivery
from services.kafka import (
    ensure_topics,
    make_consumer,
    make_producer,
    topic_partitions,
    wait_for_broker,
)
from services.projector.purge import Sweeper, skewed_clock
from services.projector.transactions import Transactions

log = logging.getLogger(__name__)

REPORT_EVERY_SECS = 10.0
MAX_BATCH = 1000
# A fetch of fewer events than this waits up to LINGER_MS once for more: a transaction
# costs about as much for 50 events as for 500 (the same pages rewritten, the same
# statements built), so under a steady trickle a short wait buys most of the batching
# (tests.bench.projector_apply: 240 us of CPU per event in batches of 50, 42 in 1,000).
LINGER_BELOW = 200
LINGER_MS = 5
RETRY_FIRST_SECS = 0.1
RETRY_MAX_SECS = 5.0


async def database_answers(engine: AsyncEngine) -> bool:
    """Whether the database works at all: tells a passing fault from a poisoned record."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


class LetterSender(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes | None) -> None: ...


class NoticeProducer(Protocol):
    """What Notices needs of an AIOKafkaProducer (a fake in unit tests)."""

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   ) -> "asyncio.Future[object]": ...


class Notices:
    """Announces projected positions, fire and forget: ``publish`` never waits and never
    fails. A sender task writes one record per call; while a write is held up (the broker
    is away) later positions are merged into the next record instead of queueing."""

    def __init__(self, producer: NoticeProducer, topic: str) -> None:
        self._producer, self._topic = producer, topic
        self._pending: dict[str, int] = {}
        self._wake = asyncio.Event()
        self.sent = self.failed = 0

    def publish(self, positions: dict[str, int]) -> None:
        for job_id, seq in positions.items():
            if seq > self._pending.get(job_id, 0):
                self._pending[job_id] = seq
        if self._pending:
            self._wake.set()

    async def run(self) -> None:
        """The sender; runs until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            positions, self._pending = self._pending, {}
            try:
                acknowledged = await self._producer.send(self._topic,
                                                         encode_projected(positions))
            except Exception as exc:  # a lost notice only delays a waiter's fallback poll
                self.failed += 1
                log.debug("announcing projected positions failed: %s", exc)
                continue
            acknowledged.add_done_callback(self._done)

    def _done(self, acknowledged: "asyncio.Future[object]") -> None:
        if acknowledged.cancelled() or acknowledged.exception() is not None:
            self.failed += 1
        else:
            self.sent += 1


class Projector:
    def __init__(self, engine: AsyncEngine, topic: str, letters: LetterSender,
                 letters_topic: str,
                 on_projected: Callable[[dict[str, int]], None] | None = None) -> None:
        self.transactions = Transactions(engine)
        self.topic = topic
        self.letters, self.letters_topic = letters, letters_topic
        self.on_projected = on_projected
        self.poisoned = 0

    @property
    def engine(self) -> AsyncEngine:
        return self.transactions.engine

    @engine.setter
    def engine(self, engine: AsyncEngine) -> None:
        """Write to another store from the next batch on (a rebuild's new generation)."""
        self.transactions.close()
        self.transactions = Transactions(engine)

    def close(self) -> None:
        self.transactions.close()

    async def project(self, records: list[Record]) -> int:
        """Apply a fetched batch in one transaction; isolate poison if it fails. Once
        committed, the positions it moved go to ``on_projected``."""
        outcome = await self._apply(records)
        if isinstance(outcome, Exception):
            outcome = Applied()
            for record in records:
                one = await self._apply([record])
                if isinstance(one, Exception):
                    outcome.merge(await self._pass_over(record, one))
                else:
                    outcome.merge(one)
        if self.on_projected is not None and outcome.positions:
            self.on_projected(outcome.positions)
        return outcome.events

    async def _apply(self, records: list[Record]) -> Applied | Exception:
        """Apply ``records`` in one transaction: what it applied, or the error if it
        failed while the database answers (so the records are to blame)."""
        delay = RETRY_FIRST_SECS
        while True:
            try:
                return await self.transactions.run(apply_batch_sync, self.topic, records)
            except Exception as exc:
                if await database_answers(self.engine):
                    return exc
                log.warning("the database is not answering (%s); retrying in %.1fs",
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECS)

    async def _pass_over(self, record: Record, exc: Exception) -> Applied:
        partition, offset, value = record
        letter = dead_letter("projector", exc, "skipped: the read models do not show it",
                             topic=self.topic, partition=partition, offset=offset,
                             value=value)
        await self.letters.send(self.letters_topic, encode_dead_letter(letter), None)
        skipped = await self.transactions.run(skip_record_sync, self.topic, record)
        self.poisoned += 1
        return skipped


async def run_projector(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    topic = settings.topics.events
    await wait_for_broker(settings.kafka_bootstrap)
    await ensure_topics(settings.kafka_bootstrap, settings.topics, settings.partitions)
    # The live generation of the store; a rebuild (``jobledger projections rebuild``)
    # switches it, and the loop below then carries on in the new one.
    store = LiveStore(settings.database_url)
    engine = await store.open()  # migrated: safe while the API migrates too
    consumer = make_consumer(settings.kafka_bootstrap)
    producer = make_producer(settings.kafka_bootstrap)
    await consumer.start()
    await producer.start()
    notices = Notices(producer, settings.topics.projected)
    sender = asyncio.create_task(notices.run())
    projector = Projector(engine, topic, Delivery(producer), settings.topics.deadletter,
                          on_projected=notices.publish)
    sweeper = Sweeper(engine, settings.purge_every_secs, settings.purge_batch,
                      skewed_clock(settings.purge_clock_skew_secs))
    try:
        tps = await topic_partitions(settings.kafka_bootstrap, topic)
        consumer.assign(tps)
        await _seek_to_stored(consumer, store.engine, topic)
        applied, reported = 0, time.monotonic()
        while not stop.is_set():
            try:
                records = await _fetch(consumer)
            except KafkaError as exc:  # a passing fault: the broker is briefly away
                log.warning("fetching events failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            if records:
                applied += await projector.project(records)
            await sweeper.turn(caught_up=len(records) < MAX_BATCH)
            if await store.switched():
                # The new generation knows where it is in the log: go on from there (the
                # rebuild has caught up, so this is at or near the end).
                projector.engine = sweeper.engine = store.engine
                await _seek_to_stored(consumer, store.engine, topic)
            if time.monotonic() - reported > REPORT_EVERY_SECS:
                behind, secs = await _lag(consumer, store.engine, topic)
                log.info("applied %d events; %d behind (%s s); %d poisoned records passed "
                         "over; %d notices sent, %d lost", applied, behind, secs,
                         projector.poisoned, notices.sent, notices.failed)
                reported = time.monotonic()
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
        projector.close()
        await store.close()


async def _seek_to_stored(consumer: AIOKafkaConsumer, engine: AsyncEngine,
                          topic: str) -> None:
    """Fetch each assigned partition from the offset the store holds (its beginning if
    the store has none)."""
    stored = await load_offsets(engine, topic)
    for tp in consumer.assignment():
        if tp.partition in stored:
            consumer.seek(tp, stored[tp.partition])
        else:
            await consumer.seek_to_beginning(tp)
    log.info("projecting %s from %s", topic, stored or "the beginning")


async def _fetch(consumer: AIOKafkaConsumer) -> list[Record]:
    """The next batch of events: whatever is there, and if that is little, what comes
    within LINGER_MS more."""
    batches = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
    records = [(r.partition, r.offset, r.value) for rs in batches.values() for r in rs]
    if records and len(records) < LINGER_BELOW:
        more = await consumer.getmany(timeout_ms=LINGER_MS,
                                      max_records=MAX_BATCH - len(records))
        records += [(r.partition, r.offset, r.value) for rs in more.values() for r in rs]
    return records


async def _lag(consumer: AIOKafkaConsumer, engine: AsyncEngine,
               topic: str) -> tuple[int, float | None]:
    """Events fetched-able but not applied yet, and how long ago the last applied event
    of a partition with events waiting happened (0 when none wait)."""
    behind: dict[int, int] = {}
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is not None:
            behind[tp.partition] = max(0, end - await consumer.position(tp))
    secs = await seconds_behind(engine, topic, [p for p, n in behind.items() if n],
                                datetime.now(UTC))
    return sum(behind.values()), secs
