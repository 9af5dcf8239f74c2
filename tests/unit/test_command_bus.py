"""The API's command bus: sent once, answered by the outcome, bounded, appends in order."""

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from services.api.bus import CommandBus
from services.api.errors import ApiError
from services.config import Settings
from services.outcomes import CommandOutcome
from tests.unit.domain_support import trigger


class FakeProducer:
    """Records each append; ``fail`` makes the delivery fail like an unreachable broker."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = fail
        self.appending = 0
        self.most_appending = 0

    async def send(self, topic: str, value: bytes, key: bytes) -> "asyncio.Future[None]":
        self.appending += 1
        self.most_appending = max(self.most_appending, self.appending)
        await asyncio.sleep(0)  # a full batch would park the sender here
        self.appending -= 1
        self.sent.append((topic, value, key))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            delivery.set_exception(KafkaConnectionError("broker down"))
        else:
            delivery.set_result(None)
        return delivery


def bus_with(producer: FakeProducer, wait_secs: float = 5.0) -> CommandBus:
    settings = Settings(command_wait_secs=wait_secs)
    consumer: Any = None  # the listener is not started: tests deliver outcomes themselves
    return CommandBus(settings, producer, consumer)  # type: ignore[arg-type]


async def answer_when_sent(bus: CommandBus, producer: FakeProducer, count: int) -> None:
    while len(producer.sent) < count:
        await asyncio.sleep(0.001)
    for command_id, future in list(bus._waiting.items()):
        future.set_result(CommandOutcome(command_id=command_id, job_id="j", seq=7))


async def test_the_outcome_answers_the_command_and_it_was_sent_once() -> None:
    producer = FakeProducer()
    bus = bus_with(producer)
    command = trigger()
    outcome, _ = await asyncio.gather(bus.send(command), answer_when_sent(bus, producer, 1))
    assert outcome is not None and outcome.command_id == command.command_id
    assert outcome.seq == 7
    assert len(producer.sent) == 1
    assert producer.sent[0][2] == b"j"  # keyed by job: one job's commands stay in order
    assert bus._waiting == {}


async def test_a_slow_answer_is_waited_for_without_sending_again() -> None:
    producer = FakeProducer()
    bus = bus_with(producer, wait_secs=0.3)
    assert await bus.send(trigger()) is None  # past the bound: the caller answers 202
    assert len(producer.sent) == 1
    assert bus._waiting == {}


async def test_an_unreachable_broker_is_a_503_to_retry() -> None:
    bus = bus_with(FakeProducer(fail=True))
    with pytest.raises(ApiError) as raised:
        await bus.send(trigger())
    assert raised.value.status == 503
    assert bus._waiting == {}


async def test_concurrent_sends_append_one_at_a_time() -> None:
    producer = FakeProducer()
    bus = bus_with(producer)
    commands = [trigger(run_id=f"r{i}") for i in range(200)]
    results = await asyncio.gather(*(bus.send(c) for c in commands),
                                   answer_when_sent(bus, producer, len(commands)))
    assert all(r is not None for r in results[:-1])
    assert producer.most_appending == 1
    assert len(producer.sent) == len(commands)
