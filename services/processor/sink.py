"""The handler's Sink on faust's producer itself: a batch's records in one request.

``Topic.send`` and ``send_soon`` (through faust's producer buffer) yield to the event loop
three times per record (faust wraps starting the producer in a stampede guard that
sleeps), so the Kafka client sends the records of one batch a record or two per request,
a round trip each (it keeps one request in flight per broker). ``Producer.send`` does not
yield: every record is handed over before anything is awaited, and they travel together.
The same partitioning (by key) as the topics' own ``send``.

This also keeps the batch loop's records out of faust's producer buffer, whose limit
(100 records) made faust stop delivering commands while a batch's outcomes and
changelog records drained, in waits of up to 0.1 s.
"""

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

import faust

from events.topics import Topics

log = logging.getLogger(__name__)


class ProducerSink:
    def __init__(self, app: faust.App, topics: Topics) -> None:
        self.app, self.topics = app, topics
        self._answers: list[tuple[bytes, bytes]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None) -> Awaitable[Any]:
        """Hand one record to the producer; returns its delivery (await it)."""
        return await self.app.producer.send(topic, key, value, partition, None, None)

    async def append(self, events: Sequence[tuple[str, bytes]],
                     orders: Sequence[tuple[str, bytes]], letters: Sequence[bytes],
                     commands: Sequence[tuple[str, bytes]] = ()) -> None:
        send, topics = self.send, self.topics
        deliveries = [await send(topics.events, k.encode(), v, None) for k, v in events]
        deliveries += [await send(topics.dispatch, k.encode(), v, None) for k, v in orders]
        deliveries += [await send(topics.deadletter, None, v, None) for v in letters]
        deliveries += [await send(topics.commands, k.encode(), v, None) for k, v in commands]
        await asyncio.gather(*deliveries)

    def answer(self, key: str, value: bytes) -> None:
        # Sent by ``send_answers`` once the batch is answered, all in one request.
        self._answers.append((key.encode(), value))

    async def send_answers(self) -> None:
        """Send the outcomes answered so far; fire and forget (a caller that hears nothing
        asks again under the same command id)."""
        answers, self._answers = self._answers, []
        for key, value in answers:
            delivery = await self.send(self.topics.outcomes, key, value, None)
            asyncio.ensure_future(delivery).add_done_callback(_log_failure)


def _log_failure(delivery: "asyncio.Future[Any]") -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        log.warning("sending an outcome failed: %s", delivery.exception())
