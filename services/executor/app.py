"""The executor process: consume dispatch orders, call endpoints, report as commands.

Offsets are committed only after a whole batch has been called and reported, so a crash
repeats orders rather than losing them; the repeats carry the same Idempotency-Key and
their reports the same command id.
"""

import asyncio
import logging
from collections import OrderedDict

import httpx
from aiokafka import AIOKafkaProducer

from events.dispatch import DispatchOrder, decode_dispatch
from services.config import Settings
from services.domain import encode_command
from services.executor.call import call_endpoint
from services.executor.guard import Network
from services.kafka import ensure_topics, make_consumer, make_producer, wait_for_broker

log = logging.getLogger(__name__)

RECENT_KEPT = 100_000


class RecentOrders:
    """Orders already carried out by this process, so a redelivery is not called twice."""

    def __init__(self, size: int = RECENT_KEPT) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first_time(self, key: str) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


async def carry_out(
    order: DispatchOrder,
    client: httpx.AsyncClient,
    producer: AIOKafkaProducer,
    settings: Settings,
    limit: asyncio.Semaphore,
    allowed: list[Network],
) -> None:
    async with limit:
        report = await call_endpoint(client, order, allowed)
    await producer.send_and_wait(settings.topics.commands, encode_command(report),
                                 key=order.job_id.encode())


async def run_executor(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    await wait_for_broker(settings.kafka_bootstrap)
    await ensure_topics(settings.kafka_bootstrap, settings.topics, settings.partitions)
    consumer = make_consumer(settings.kafka_bootstrap, settings.topics.dispatch,
                             group_id=f"{settings.topic_prefix}-executor")
    producer = make_producer(settings.kafka_bootstrap)
    limit = asyncio.Semaphore(settings.executor_concurrency)
    recent = RecentOrders()
    allowed = settings.allowed_ip_networks()
    limits = httpx.Limits(max_connections=settings.executor_concurrency)
    async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:
        await consumer.start()
        await producer.start()
        log.info("executor consuming %s", settings.topics.dispatch)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                orders = []
                for records in batches.values():
                    for record in records:
                        order = decode_dispatch(record.value)
                        if recent.first_time(order.idempotency_key):
                            orders.append(order)
                if orders:
                    await asyncio.gather(*(carry_out(o, client, producer, settings, limit, allowed)
                                           for o in orders))
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()
            await producer.stop()
