"""The faust-streaming app: tables, the command agent, and the retry timer.

Thin by design: the agent's loop body is ``handler.process_command``; this module only
adapts faust tables and topics to the handler's ports.
"""

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.admin import NewTopic
from faust.types import TableT

from services.config import Settings
from services.deadletter import dead_letter, encode_dead_letter
from services.domain import encode_command
from services.domain.commands import FireDueTimers
from services.processor.gaps import GapGuard
from services.processor.handler import CommandRecord, process_command
from services.processor.ports import TableStore, TopicSink
from services.processor.statecodec import decode_job

log = logging.getLogger(__name__)

TIMER_TICK_SECS = 0.5
ASK_AGAIN_SECS = 2.0
# A job whose due timers stay due after being asked about is asked again less and less
# often: a timer command that keeps failing must not flood the log.
ASK_AGAIN_MAX_SECS = 300.0


TABLES = ("jobs", "runs", "answers")


def table_topics(settings: Settings) -> list[NewTopic]:
    """The tables' changelog topics, named as faust names them. Created before the worker
    starts: a changelog topic faust has only just created can look partitionless to it,
    and its first table write then fails (PartitionsMismatch)."""
    return [NewTopic(f"{settings.topic_prefix}-processor-{name}-changelog",
                     settings.partitions, 1, topic_configs={"cleanup.policy": "compact"})
            for name in TABLES]


class TimerAsks:
    """When the timer last asked about each job, and how long it waits before asking
    again while the same timers stay due."""

    def __init__(self) -> None:
        self._asked: dict[str, tuple[float, float, tuple[datetime, ...]]] = {}

    def should_ask(self, job_id: str, due: tuple[datetime, ...], tick: float) -> bool:
        last = self._asked.get(job_id)
        if last is None or last[2] != due:
            self._asked[job_id] = (tick, ASK_AGAIN_SECS, due)
            return True
        at, wait, _ = last
        if tick - at < wait:
            return False  # the last request is probably still on its way
        self._asked[job_id] = (tick, min(wait * 2, ASK_AGAIN_MAX_SECS), due)
        return True


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

    asks = TimerAsks()
    poisoned_jobs: set[bytes] = set()

    @app.timer(TIMER_TICK_SECS)
    async def fire_due_timers() -> None:
        # The timer only asks: requeueing or timing out is a command like any other, so it is
        # on the log and decided in order with everything else the job receives.
        now = datetime.now(UTC)
        tick = time.monotonic()
        for key, raw in list(store.jobs.items()):
            try:
                job = decode_job(raw)
                due = tuple(sorted(at for at in (*job.delayed.values(),
                                                 *job.deadlines.values()) if at <= now))
                if not due or not asks.should_ask(job.job_id, due, tick):
                    continue
                command = FireDueTimers(
                    command_id=f"timers:{job.job_id}:{uuid.uuid4().hex}",
                    project_id=job.project_id, job_id=job.job_id, issued_at=now,
                    actor="timer")
                await commands.send(key=job.job_id.encode(), value=encode_command(command))
            except Exception as exc:  # one job's bad state must not stop the timer
                if key not in poisoned_jobs:
                    poisoned_jobs.add(key)
                    letter = dead_letter("timer", exc, "skipped by the timer", key=key,
                                         value=raw)
                    await letters.send(value=encode_dead_letter(letter))

    return app
