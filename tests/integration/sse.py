"""Reading server-sent events as a client does (for the stream tests)."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec


@dataclass
class Message:
    id: str | None = None
    event: str | None = None
    data: Any = None
    comment: str | None = None


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """The SSE messages of a response, comments included, until it ends."""
    current = Message()
    async for line in response.aiter_lines():
        if line == "":
            if current != Message():
                yield current
            current = Message()
        elif line.startswith(":"):
            current.comment = line[1:].strip()
        else:
            name, _, value = line.partition(": ")
            if name == "data":
                current.data = msgspec.json.decode(value)
            elif name in ("id", "event"):
                setattr(current, name, value)


async def drain(reading: AsyncIterator[Message]) -> list[Message]:
    return [m async for m in reading]


async def events_until(reading: AsyncIterator[Message], done: Any,
                       timeout: float) -> list[Message]:
    """Events (messages with an id) until ``done(collected)`` holds; fails past ``timeout``."""
    collected: list[Message] = []

    async def read() -> None:
        while not done(collected):
            message = await anext(reading)
            if message.id is not None:
                collected.append(message)

    await asyncio.wait_for(read(), timeout)
    return collected
