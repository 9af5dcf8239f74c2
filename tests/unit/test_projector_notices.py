"""The projector's visibility notices: one record per committed batch, fire and forget."""

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError

from events.topics import Topics
from projections.notices import decode_projected, encode_projected
from services.kafka import topic_specs
from services.projector.app import Notices


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []
        self.acks: list[asyncio.Future[object]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.refuse = False

    async def send(self, topic: str, value: bytes | None = None,
                   key: bytes | None = None) -> "asyncio.Future[object]":
        await self.gate.wait()  # a broker that is away holds the write up
        if self.refuse:
            raise KafkaTimeoutError()
        self.sent.append((topic, value))
        ack: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def positions(producer: Producer) -> list[dict[str, int]]:
    return [decode_projected(value or b"").positions for _, value in producer.sent]


async def test_each_publish_is_one_record_of_positions() -> None:
    producer = Producer()
    notices = Notices(producer, "t.projected")
    sender = asyncio.create_task(notices.run())
    try:
        notices.publish({"j": 7, "k": 2})
        await settle()
        notices.publish({"j": 9})
        await settle()
        notices.publish({})  # nothing moved: nothing sent
        await settle()
        assert [t for t, _ in producer.sent] == ["t.projected", "t.projected"]
        assert positions(producer) == [{"j": 7, "k": 2}, {"j": 9}]
        producer.acks[0].set_result(None)
        producer.acks[1].set_exception(KafkaTimeoutError())
        await settle()
        assert (notices.sent, notices.failed) == (1, 1)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def test_a_held_up_broker_merges_notices_and_never_blocks_publish() -> None:
    producer = Producer()
    notices = Notices(producer, "t.projected")
    sender = asyncio.create_task(notices.run())
    try:
        producer.gate.clear()
        notices.publish({"j": 1})
        await settle()  # the sender now waits on the broker
        notices.publish({"j": 3, "k": 1})  # returns at once
        notices.publish({"j": 2})  # a lower seq never moves a position back
        producer.gate.set()
        await settle()
        assert positions(producer) == [{"j": 1}, {"j": 3, "k": 1}]
        producer.refuse = True
        notices.publish({"j": 4})
        await settle()
        assert notices.failed == 1 and not sender.done()  # a lost notice is only counted
        producer.refuse = False
        notices.publish({"j": 5})
        await settle()
        assert positions(producer)[-1] == {"j": 5}
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


def test_the_notice_format_and_topic() -> None:
    assert encode_projected({"j": 7}) == b'{"positions":{"j":7}}'
    topic = next(t for t in topic_specs(Topics("t"), 4) if t.name == "t.projected")
    assert topic.num_partitions == 1
    assert topic.topic_configs == {"retention.ms": str(3600 * 1000)}
    with pytest.raises(ValueError):
        decode_projected(b'{"not": "a notice"}')
