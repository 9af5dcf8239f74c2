"""The API's wait for the projection: woken by notices, or at once for a position heard."""

import asyncio
from typing import Any

from services.api.visibility import ProjectionWatcher


def watcher() -> ProjectionWatcher:
    dummy: Any = None  # neither the engine nor the consumer is used without start()
    return ProjectionWatcher(dummy, dummy, "unused", "t.projected")


async def test_a_notice_wakes_the_requests_it_satisfies_only() -> None:
    w = watcher()
    low = asyncio.create_task(w.wait_for("j", 3, 5))
    high = asyncio.create_task(w.wait_for("j", 9, 0.2))
    other = asyncio.create_task(w.wait_for("k", 1, 0.2))
    await asyncio.sleep(0)
    w.applied({"j": 5})
    assert await low is True
    assert await high is False and await other is False


async def test_a_position_already_heard_answers_at_once() -> None:
    w = watcher()
    w.applied({"j": 7})
    w.applied({"j": 4})  # an older notice does not move the position back
    assert await asyncio.wait_for(w.wait_for("j", 7, 5), 0.01) is True
