"""The faust-streaming app: tables, the command agent, and the retry timer.

Thin by design: the agent decides commands in batches (``batching``: the body is
``handler.process_commands``); this module only adapts faust tables and topics to the
handler's ports and tunes faust (its restart hand-over is fixed in ``handover``).
"""

import logging
from typing import Any, cast

import faust
from aiokafka.admin import NewTopic
from faust.types import TableT

from services.config import Settings
from services.deadletter import dead_letter, encode_dead_letter
from services.kafka import PRODUCER_BATCH_BYTES
from services.processor.batching import CommandBatches, ready_batches
from services.processor.gaps import GapGuard
from services.processor.handover import HandoverApp
from services.processor.ports import TableStore
from services.processor.sink import ProducerSink
from services.processor.tablewrites import BatchWrites, BufferedTable
from services.processor.timer import ask_for_due_timers, ask_for_job_timers

log = logging.getLogger(__name__)

TIMER_TICK_SECS = 0.5


TABLES = ("jobs", "runs", "answers", "keys")

class SkippedOffsets(Exception):
    """What the dead letter of a gap read-back records (the commands were not lost)."""


def table_topics(settings: Settings) -> list[NewTopic]:
    """The tables' changelog topics, named as faust names them. Created before the worker
    starts: a changelog topic faust has only just created can look partitionless to it,
    and its first table write then fails (PartitionsMismatch)."""
    return [NewTopic(f"{settings.topic_prefix}-processor-{name}-changelog",
                     settings.partitions, 1, topic_configs={"cleanup.policy": "compact"})
            for name in TABLES]


def faust_settings(settings: Settings) -> dict[str, Any]:
    """Settings of the processor's own that faust's defaults do not match."""
    tuned: dict[str, Any] = {}
    if settings.processor_max_poll_records:
        tuned["broker_max_poll_records"] = settings.processor_max_poll_records
    if settings.processor_stream_buffer:
        tuned["stream_buffer_maxsize"] = settings.processor_stream_buffer
    return tuned


def create_app(settings: Settings) -> faust.App:
    topics = settings.topics
    # The fixed restart hand-over (handover.py); faust's own only to show what it does.
    app_class = HandoverApp if settings.processor_handover_patch else faust.App
    if not settings.processor_handover_patch:
        log.warning("faust's restart hand-over is NOT patched (JOBLEDGER_FAUST_HANDOVER_PATCH"
                    "=0): the stream may skip commands and freeze commits after a restart")
    app = app_class(
        f"{settings.topic_prefix}-processor",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.processor_data_dir / settings.topic_prefix),
        processing_guarantee="at_least_once",
        producer_acks=-1,
        # A batch hands its records over at once (ProducerSink, BatchWrites): lingering
        # would only delay them. Room for a batch's records of one partition in one
        # producer batch, so that they travel in one request: a crash then does not
        # leave half of a batch's state in the changelogs.
        producer_linger_ms=0,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        table_standby_replicas=0,
        # A killed worker's partitions move on after this long, not faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        **faust_settings(settings),
    )

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes,
                         partitions=settings.partitions, internal=False)

    commands = topic(topics.commands)
    letters = app.topic(topics.deadletter, key_type=bytes, value_type=bytes, partitions=1,
                        internal=False)
    # On the producer itself (see ProducerSink): faust's Topic.send yields per record.
    sink = ProducerSink(app, topics)

    def table(name: str) -> TableT:
        # Keys and values are bytes (the app's raw serializers): what goes into the
        # changelog comes back unchanged after a recovery.
        return app.Table(name, partitions=settings.partitions, key_type=bytes,
                         value_type=bytes)

    # Writes of a batch go through BatchWrites: the last value per key, each sent to the
    # changelog partition of the command that made it, all in one request.
    writes = BatchWrites()
    store = TableStore(*(cast(TableT, BufferedTable(table(name), writes)) for name in TABLES))

    async def on_gap(partition: int, start: int, end: int) -> None:
        # Counted on /readyz with the dead letters: the tripwire must never fire.
        exc = SkippedOffsets(f"faust skipped offsets {start}..{end - 1}")
        letter = dead_letter("processor", exc, "tripwire: read back from Kafka and decided",
                             topic=topics.commands, partition=partition, offset=start)
        await letters.send(value=encode_dead_letter(letter))

    guard = GapGuard(settings.kafka_bootstrap, topics.commands, app.conf.id, on_gap)
    batches = CommandBatches(store, sink, writes, guard, letters)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        guard.forget()
        store.stale = True

    @app.on_rebalance_complete.connect
    async def on_recovered(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The tables hold the recovered partitions now: index what they hold.
        store.stale = True

    @app.agent(commands)
    async def apply_commands(stream: faust.StreamT) -> None:
        async for batch in ready_batches(stream, settings.processor_batch_max):
            await batches.handle(batch)  # stored when it returns
            for event in batch:
                await stream.ack(event)

    @app.timer(TIMER_TICK_SECS)
    async def fire_due_timers() -> None:
        await ask_for_due_timers(
            store, lambda key, value: commands.send(key=key, value=value),
            lambda key, value: letters.send(key=key, value=value))
        await ask_for_job_timers(
            store, lambda key, value: commands.send(key=key, value=value),
            lambda key, value: letters.send(key=key, value=value))

    return app
