"""The projector on the real broker: events fetched, applied in one transaction per batch,
and each committed batch announced on ``<prefix>.projected``."""

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from projections.db import make_engine
from projections.notices import decode_projected
from projections.queries import get_run, job_positions_of
from services.config import Settings
from services.kafka import ensure_topics, make_producer
from services.projector.app import run_projector
from tests.unit.test_projections import HISTORY

pytestmark = pytest.mark.kafka


async def test_committed_batches_are_announced(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, partitions=2,
                        topic_prefix=f"pn{uuid.uuid4().hex[:8]}",
                        database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
                        # The scripted runs ended in January 2026: keep the retention
                        # sweep's clock before their purge_at, so they stay to be read.
                        purge_clock_skew_secs=-3 * 365 * 86400.0)
    topics = settings.topics
    await ensure_topics(kafka_bootstrap, topics, settings.partitions)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for _, _, value in HISTORY:
            await producer.send_and_wait(topics.events, value, key=b"j")
    finally:
        await producer.stop()

    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                metadata_max_age_ms=500)
    try:
        seen: dict[str, int] = {}
        async with asyncio.timeout(60):
            while topics.projected not in await _topic_names(kafka_bootstrap):
                await asyncio.sleep(0.2)
            consumer.subscribe([topics.projected])
            await consumer.start()
            while seen.get("j", 0) < 7:
                record = await consumer.getone()
                assert record.value is not None
                seen.update(decode_projected(record.value).positions)
        engine = make_engine(settings.database_url)
        try:
            assert await job_positions_of(engine, ["j"]) == {"j": 7}
            run = await get_run(engine, "p", "r1")
            assert run is not None and run.status == "completed"
        finally:
            await engine.dispose()
    finally:
        stop.set()
        await task
        await consumer.stop()


async def _topic_names(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()
