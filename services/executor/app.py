"""The executor process: consume dispatch orders, call endpoints, report as commands.

The loop itself is services.executor.loop; this module wires it to Kafka and HTTP. The
resolver and socket seams exist for tests (a static DNS table; a socket factory that
records every connection attempt and refuses anything but loopback); the address rule
is applied around them whatever they are.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp.abc import AbstractResolver
from aiokafka.admin import AIOKafkaAdminClient

from services.config import Settings
from services.delivery import Delivery
from services.executor.call import close_session, open_session
from services.executor.guard import SocketFactory, plain_socket
from services.executor.loop import Executor, RecentOrders, cancel_all
from services.kafka import ensure_topics, make_consumer, make_producer, wait_for_broker
from services.runtoken import load_secret

__all__ = ["RecentOrders", "run_executor"]

log = logging.getLogger(__name__)


async def run_executor(settings: Settings, stop: asyncio.Event | None = None, *,
                       resolver: AbstractResolver | None = None,
                       create_socket: SocketFactory = plain_socket) -> None:
    """Run until ``stop`` is set, then let running orders finish (within the grace) and
    commit. Cancelling the task instead is like a crash: nothing more is committed."""
    stop = stop or asyncio.Event()
    await wait_for_broker(settings.kafka_bootstrap)
    await ensure_topics(settings.kafka_bootstrap, settings.topics, settings.partitions)
    group_id = f"{settings.topic_prefix}-executor"
    consumer = make_consumer(settings.kafka_bootstrap, group_id=group_id)
    producer = make_producer(settings.kafka_bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    allowed = settings.allowed_ip_networks()
    session = open_session(allowed, settings.executor_max_in_flight, resolver=resolver,
                           create_socket=create_socket)
    executor = Executor(consumer=consumer, delivery=Delivery(producer), admin=admin,
                        session=session, allowed=allowed, topics=settings.topics,
                        group_id=group_id, max_in_flight=settings.executor_max_in_flight,
                        token_secret=load_secret(settings))
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        for start, close in ((admin.start, admin.close), (producer.start, producer.stop),
                             (consumer.start, consumer.stop)):
            await start()
            closers.append(close)
        consumer.subscribe([settings.topics.dispatch], listener=executor.listener())
        log.info("executor consuming %s (at most %d orders at once)",
                 settings.topics.dispatch, settings.executor_max_in_flight)
        await executor.run(stop, settings.executor_stop_grace_secs)
    finally:
        await cancel_all(executor.tasks())
        await close_session(session)
        # The consumer first (it leaves the group), the producer flushes, the admin last.
        for close in reversed(closers):
            try:
                await close()
            except Exception:
                log.exception("closing the executor's Kafka clients failed")
