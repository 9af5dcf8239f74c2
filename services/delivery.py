"""Writing the executor's records (reports, dead letters) until the broker acknowledges them.

A broker that is briefly unavailable is a passing fault: the write is retried with backoff
and nothing is rejected for it. Only a record the broker will never take (too large,
invalid topic) is an error the caller must handle.
"""

import asyncio
import logging
from typing import Protocol

from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

log = logging.getLogger(__name__)

# The same record would fail again: retrying cannot help.
PERMANENT_ERRORS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, InvalidTopicError)


class Producer(Protocol):
    """What Delivery needs of an AIOKafkaProducer (a fake in unit tests)."""

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   ) -> "asyncio.Future[object]": ...


class RecordRefused(Exception):
    """The broker will never take this record."""


class Delivery:
    def __init__(self, producer: Producer, first_backoff: float = 0.1,
                 max_backoff: float = 5.0) -> None:
        self._producer = producer
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff

    async def send(self, topic: str, value: bytes, key: bytes | None) -> None:
        """Return once the broker acknowledged the record (acks=all). Many callers send
        at once, so the producer batches their records; none waits for another's ack."""
        delay = self._first_backoff
        while True:
            try:
                acknowledged = await self._producer.send(topic, value, key=key)
                await acknowledged
                return
            except PERMANENT_ERRORS as exc:
                raise RecordRefused(f"{type(exc).__name__}: {exc}") from exc
            except KafkaError as exc:
                log.warning("writing to %s failed (%s: %s); retrying in %.1fs", topic,
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
