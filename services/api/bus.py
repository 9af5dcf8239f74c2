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

RESEND_SECS = 2.0


class CommandBus:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer,
                 consumer: AIOKafkaConsumer) -> None:
        self.settings = settings
        self.producer = producer
        self.consumer = consumer
        self._waiting: dict[str, asyncio.Future[CommandOutcome]] = {}
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

        Without an answer after RESEND_SECS the same command (same id) is sent again: the
        processor answers a command id once, so a repeat is harmless, and a command lost
        on its way (a processor crash, a rebalance) gets another chance.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommandOutcome] = loop.create_future()
        self._waiting[command.command_id] = future
        deadline = loop.time() + self.settings.command_wait_secs
        raw = encode_command(command)
        try:
            sent = False
            while (left := deadline - loop.time()) > 0:
                try:
                    await self.producer.send_and_wait(self.settings.topics.commands, raw,
                                                      key=command.job_id.encode())
                    sent = True
                except KafkaError as exc:
                    if not sent:  # nothing was accepted, so the client may simply retry
                        raise ApiError(503, "the event log is not reachable; try again",
                                       headers={"Retry-After": "1"}) from exc
                    log.warning("resending command %s failed: %s", command.command_id, exc)
                try:
                    return await asyncio.wait_for(asyncio.shield(future),
                                                  min(RESEND_SECS, left))
                except TimeoutError:
                    continue
            return None
        finally:
            del self._waiting[command.command_id]
