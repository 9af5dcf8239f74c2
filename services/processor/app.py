"""The faust-streaming app: tables, the command agent, and the retry timer.

Thin by design: the agent's loop body is ``handler.process_command``; this module only
adapts faust tables and topics to the handler's ports.
"""

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust
import msgspec
from aiokafka.admin import NewTopic
from faust.types import TableT

from services.config import Settings
from services.domain import JobState, RunState, encode_command
from services.domain.commands import FireDueTimers
from services.domain.state import Answer
from services.processor.gaps import GapGuard
from services.processor.handler import process_command

log = logging.getLogger(__name__)

_job_decoder = msgspec.msgpack.Decoder(JobState)
_run_decoder = msgspec.msgpack.Decoder(RunState)
_answer_decoder = msgspec.msgpack.Decoder(Answer)
_encode = msgspec.msgpack.encode

TIMER_TICK_SECS = 0.5
ASK_AGAIN_SECS = 2.0


TABLES = ("jobs", "runs", "answers")


def table_topics(settings: Settings) -> list[NewTopic]:
    """The tables' changelog topics, named as faust names them. Created before the worker
    starts: a changelog topic faust has only just created can look partitionless to it,
    and its first table write then fails (PartitionsMismatch)."""
    return [NewTopic(f"{settings.topic_prefix}-processor-{name}-changelog",
                     settings.partitions, 1, topic_configs={"cleanup.policy": "compact"})
            for name in TABLES]


class TableStore:
    """The handler's StateStore over three faust tables (values are msgpack bytes)."""

    def __init__(self, jobs: TableT, runs: TableT, answers: TableT) -> None:
        self.jobs, self.runs, self.answers = jobs, runs, answers

    def get_job(self, job_id: str) -> JobState | None:
        raw = self.jobs.get(job_id.encode())
        return None if raw is None else _job_decoder.decode(raw)

    def get_run(self, run_id: str) -> RunState | None:
        raw = self.runs.get(run_id.encode())
        return None if raw is None else _run_decoder.decode(raw)

    def get_answer(self, command_id: str) -> Answer | None:
        raw = self.answers.get(command_id.encode())
        return None if raw is None else _answer_decoder.decode(raw)

    def put_job(self, job: JobState) -> None:
        self.jobs[job.job_id.encode()] = _encode(job)

    def put_run(self, run: RunState) -> None:
        self.runs[run.run_id.encode()] = _encode(run)

    def put_answer(self, command_id: str, answer: Answer) -> None:
        self.answers[command_id.encode()] = _encode(answer)


class TopicSink:
    def __init__(self, events: faust.TopicT, dispatch: faust.TopicT,
                 outcomes: faust.TopicT) -> None:
        self.events, self.dispatch, self.outcomes = events, dispatch, outcomes

    async def append(self, events: Sequence[tuple[str, bytes]],
                     orders: Sequence[tuple[str, bytes]]) -> None:
        pending = [await self.events.send(key=k.encode(), value=v) for k, v in events]
        pending += [await self.dispatch.send(key=k.encode(), value=v) for k, v in orders]
        for delivery in pending:
            await delivery

    def answer(self, key: str, value: bytes) -> None:
        self.outcomes.send_soon(key=key.encode(), value=value)


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
    sink = TopicSink(topic(topics.events), topic(topics.dispatch), topic(topics.outcomes))

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

    async def handle(raw: bytes) -> None:
        await process_command(raw, store, sink)

    @app.agent(commands)
    async def apply_commands(stream: faust.StreamT) -> None:
        # One command at a time. (Batches through ``stream.take_events`` would share one
        # broker acknowledgement; tried before the gap check existed, they lost commands.)
        async for event in stream.events():
            await guard.before(event.message.partition, event.message.offset, handle)
            await handle(event.value)

    asked_at: dict[str, float] = {}

    @app.timer(TIMER_TICK_SECS)
    async def fire_due_timers() -> None:
        # The timer only asks: requeueing or timing out is a command like any other, so it is
        # on the log and decided in order with everything else the job receives.
        now = datetime.now(UTC)
        tick = time.monotonic()
        for raw in list(store.jobs.values()):
            job = _job_decoder.decode(raw)
            job_id = job.job_id
            timers = (*job.delayed.values(), *job.deadlines.values())
            if not any(at <= now for at in timers):
                continue
            if tick - asked_at.get(job_id, 0.0) < ASK_AGAIN_SECS:
                continue  # the last request is probably still on its way
            asked_at[job_id] = tick
            command = FireDueTimers(
                command_id=f"timers:{job_id}:{uuid.uuid4().hex}", project_id=job.project_id,
                job_id=job_id, issued_at=now, actor="timer")
            await commands.send(key=job_id.encode(), value=encode_command(command))

    return app
