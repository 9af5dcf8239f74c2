"""Kafka plumbing shared by the services: topic creation, producers, consumers."""

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from events.topics import Topics

log = logging.getLogger(__name__)

# Partition counts and configs are decided here, not by broker defaults: the commands and
# events topics must have the same count, so that a job's commands and events are handled
# by the same processor instance.
FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
A_WEEK = {"retention.ms": str(7 * 24 * 3600 * 1000)}
AN_HOUR = {"retention.ms": str(3600 * 1000)}


def topic_specs(topics: Topics, partitions: int) -> list[NewTopic]:
    return [
        NewTopic(topics.commands, partitions, 1, topic_configs=A_WEEK),
        NewTopic(topics.events, partitions, 1, topic_configs=FOREVER),
        NewTopic(topics.dispatch, partitions, 1, topic_configs=A_WEEK),
        NewTopic(topics.outcomes, partitions, 1, topic_configs=AN_HOUR),
        NewTopic(topics.deadletter, 1, 1, topic_configs=FOREVER),
        NewTopic(topics.projected, 1, 1, topic_configs=AN_HOUR),
    ]


async def ensure_topics(bootstrap: str, topics: Topics, partitions: int) -> None:
    """Create the topics if missing; safe to call from every service at every start."""
    await create_missing(bootstrap, topic_specs(topics, partitions))


async def create_missing(bootstrap: str, specs: list[NewTopic]) -> None:
    """Create the topics that do not exist yet, and return once every partition of each
    has a leader (a topic just created can show no partitions for a moment)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in specs if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another service created them first
            log.info("created topics %s", [t.name for t in missing])
        wanted = {t.name: t.num_partitions for t in specs}
        for _ in range(100):
            described = await admin.describe_topics(list(wanted))
            led = {t["topic"]: sum(p["leader"] >= 0 for p in t["partitions"])
                   for t in described}
            if all(led.get(name, 0) >= count for name, count in wanted.items()):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topics {sorted(wanted)} have no leaders yet")
    finally:
        await admin.close()


# Records per producer request: aiokafka's default batch (16 KiB, about 25 commands) made
# a bulk trigger cost dozens of requests; the broker's CPU is per request, not per record.
# Below the broker's largest record batch (message.max.bytes, about 1 MB by default).
PRODUCER_BATCH_BYTES = 512 * 1024


def make_producer(bootstrap: str, **kwargs: object) -> AIOKafkaProducer:
    """acks=all and idempotence: an acknowledged command or event is never lost or doubled."""
    options: dict[str, object] = {"linger_ms": 2, "max_batch_size": PRODUCER_BATCH_BYTES}
    options.update(kwargs)
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        **options,
    )


def make_consumer(bootstrap: str, *topics: str, **kwargs: object) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kwargs,
    )


async def wait_for_broker(bootstrap: str, timeout: float = 60.0) -> None:
    """Services may start before the broker is ready (make run starts them together)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            await admin.close()
            return
        except KafkaError as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"Kafka at {bootstrap} not reachable: {exc}") from exc
            await asyncio.sleep(0.5)


async def topic_partitions(bootstrap: str, *topics: str) -> list[TopicPartition]:
    """Every partition of the topics, asked of the broker (a fresh consumer's metadata
    does not know topics it has not subscribed to)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return sorted(TopicPartition(t["topic"], p["partition"])
                  for t in described for p in t["partitions"])


async def group_members(bootstrap: str, *groups: str) -> dict[str, int]:
    """Members of each consumer group that is Stable (0 for a group that is not)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups(list(groups))
    finally:
        await admin.close()
    members = dict.fromkeys(groups, 0)
    for response in responses:
        for group in response.to_object()["groups"]:
            if group["group"] in members and group["state"] == "Stable":
                members[group["group"]] = len(group["members"])
    return members
