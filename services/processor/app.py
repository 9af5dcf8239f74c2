"""The faust-streaming app: tables, the command agent, and the retry timer.

Thin by design: the agent's loop body is ``handler.process_command``; this module only
adapts faust tables and topics to the handler's ports.
"""

import logging
from typing import Any

import faust
from aiokafka.admin import NewTopic
from faust.types import TableT

from services.config import Settings
from services.deadletter import dead_letter, encode_dead_letter
from services.processor.gaps import GapGuard
from services.processor.handler import CommandRecord, process_command
from services.processor.ports import TableStore, TopicSink
from services.processor.timer import ask_for_due_timers

log = logging.getLogger(__name__)

TIMER_TICK_SECS = 0.5


TABLES = ("jobs", "runs", "answers")


def table_topics(settings: Settings) -> list[NewTopic]:
    """The tables' changelog topics, named as faust names them. Created before the worker
    starts: a changelog topic faust has only just created can look partitionless to it,
    and its first table write then fails (PartitionsMismatch)."""
    return [NewTopic(f"{settings.topic_prefix}-processor-{name}-changelog",
                     settings.partitions, 1, topic_configs={"cleanup.policy": "compact"})
            for name in TABLES]


def create_app(settings: Settings) -> faust.App:
    topics = settings.topics
    app = faust.App(
        f"{settings.topic_prefix}-processor",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.processor_data_dir / settings.topic_prefix),
        processing_guarantee="at_least_once",
        producer_acks=-1,
        producer_linger_ms=2,
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
    )

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes,
                         partitions=settings.partitions, internal=False)

    commands = topic(topics.commands)
    letters = app.topic(topics.deadletter, key_type=bytes, value_type=bytes, partitions=1,
                        internal=False)
    sink = TopicSink(topic(topics.events), topic(topics.dispatch), topic(topics.outcomes),
                     letters)

    def table(name: str) -> TableT:
        # Keys and values are bytes (the app's raw serializers): what goes into the
        # changelog comes back unchanged after a recovery.
        return app.Table(name, partitions=settings.partitions, key_type=bytes,
                         value_type=bytes)

    store = TableStore(*(table(name) for name in TABLES))

    guard = GapGuard(settings.kafka_bootstrap, topics.commands, app.conf.id)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        guard.forget()
        store.stale = True

    @app.on_rebalance_complete.connect
    async def on_recovered(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The tables hold the recovered partitions now: index what they hold.
        store.stale = True

    async def handle(record: CommandRecord) -> None:
        try:
            await process_command(record, store, sink)
        except Exception as exc:
            # process_command isolates poison itself; this is the net under a bug in that
            # isolation, so that even then one record cannot stop the stream.
            letter = dead_letter("processor", exc, "dropped: the processor failed on it",
                                 topic=record.topic, partition=record.partition,
                                 offset=record.offset, value=record.value)
            await letters.send(value=encode_dead_letter(letter))

    async def handle_raw(raw: bytes) -> None:
        await handle(CommandRecord(raw, topics.commands))

    @app.agent(commands)
    async def apply_commands(stream: faust.StreamT) -> None:
        # One command at a time. (Batches through ``stream.take_events`` would share one
        # broker acknowledgement; tried before the gap check existed, they lost commands.)
        async for event in stream.events():
            message = event.message
            await guard.before(message.partition, message.offset, handle_raw)
            await handle(CommandRecord(event.value, message.topic, message.partition,
                                       message.offset))

    @app.timer(TIMER_TICK_SECS)
    async def fire_due_timers() -> None:
        await ask_for_due_timers(
            store, lambda key, value: commands.send(key=key, value=value),
            lambda key, value: letters.send(key=key, value=value))

    return app
