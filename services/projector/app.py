"""Consume the events topic and apply it to the read models.

No consumer group: the projector assigns itself every partition and resumes from the
offsets stored in the database, which are committed with the rows they produced.
"""

import asyncio
import logging
import time

from projections.db import create_schema, drop_schema, make_engine
from projections.projector import apply_batch, load_offsets
from services.config import Settings
from services.kafka import ensure_topics, make_consumer, topic_partitions, wait_for_broker

log = logging.getLogger(__name__)

REPORT_EVERY_SECS = 10.0


async def run_projector(settings: Settings, stop: asyncio.Event | None = None,
                        rebuild: bool = False) -> None:
    stop = stop or asyncio.Event()
    topic = settings.topics.events
    await wait_for_broker(settings.kafka_bootstrap)
    await ensure_topics(settings.kafka_bootstrap, settings.topics, settings.partitions)
    engine = make_engine(settings.database_url)
    if rebuild:
        await drop_schema(engine)
    await create_schema(engine)
    consumer = make_consumer(settings.kafka_bootstrap)
    await consumer.start()
    try:
        tps = await topic_partitions(settings.kafka_bootstrap, topic)
        consumer.assign(tps)
        stored = await load_offsets(engine, topic)
        for tp in tps:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        log.info("projecting %s from %s", topic, stored or "the beginning")
        applied, reported = 0, time.monotonic()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            records = [(r.partition, r.offset, r.value) for rs in batches.values() for r in rs]
            if records:
                async with engine.begin() as conn:
                    applied += await apply_batch(conn, topic, records)
            if time.monotonic() - reported > REPORT_EVERY_SECS:
                log.info("applied %d events", applied)
                reported = time.monotonic()
    finally:
        await consumer.stop()
        await engine.dispose()
