"""Send a command and wait, bounded, until its effect is visible in the read model.

The waiter listens to the outcomes topic from its end (no consumer group: every API
process hears every outcome) and wakes the request that sent the command.
"""

import asyncio
import logging

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.api.errors import ApiError
from services.config import Settings
from services.domain import Command, encode_command
from services.kafka import topic_partitions
from services.outcomes import CommandOutcome, decode_outcome

log = logging.getLogger(__name__)


class CommandBus:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer,
                 consumer: AIOKafkaConsumer) -> None:
        self.settings = settings
        self.producer = producer
        self.consumer = consumer
        self._waiting: dict[str, asyncio.Future[CommandOutcome]] = {}
        # One appender at a time. When the producer's batch is full, aiokafka parks every
        # sender on the batch's drain and wakes them all together, so thousands of
        # concurrent sends (a bulk trigger) spend the event loop re-trying appends; behind
        # a FIFO lock only the first waits and the rest follow in order.
        self._appending = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        tps = await topic_partitions(self.settings.kafka_bootstrap,
                                     self.settings.topics.outcomes)
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end positions now, before any command is sent
            await self.consumer.position(tp)
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener:
            self._listener.cancel()

    async def _listen(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=500)
            except Exception:  # keep listening; a failed fetch is retried
                log.exception("outcome listener fetch failed")
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for record in records:
                    try:
                        outcome = decode_outcome(record.value)
                    except msgspec.DecodeError:
                        log.warning("skipping an undecodable outcome at %s@%d",
                                    record.partition, record.offset)
                        continue
                    future = self._waiting.get(outcome.command_id)
                    if future is not None and not future.done():
                        future.set_result(outcome)

    async def send(self, command: Command) -> CommandOutcome | None:
        """Send a command; its outcome, or None if none came within the wait bound.

        The command is sent once. Once the broker has acknowledged it (acks=all), it is
        on the log and the processor answers it, also after a crash or a rebalance: its
        offset is committed only after the answer is written, and a repeat of an answered
        command gets the stored answer again. Sending again on a slow answer would only
        add load when the processor is already behind.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommandOutcome] = loop.create_future()
        self._waiting[command.command_id] = future
        deadline = loop.time() + self.settings.command_wait_secs
        try:
            try:
                async with self._appending:
                    delivery = await self.producer.send(
                        self.settings.topics.commands, encode_command(command),
                        key=command.job_id.encode())
                await delivery
            except KafkaError as exc:  # nothing was accepted, so the client may simply retry
                raise ApiError(503, "the event log is not reachable; try again",
                               headers={"Retry-After": "1"}) from exc
            try:
                return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
            except TimeoutError:
                return None
        finally:
            del self._waiting[command.command_id]
