"""The services' event loop: uvloop (libuv) instead of asyncio's pure-Python selector loop.

Every service spends most of its CPU in the loop itself (aiokafka's many small reads and
writes, timers, task switches); uvloop cut the API's CPU per run by about a fifth in the
benchmark. Nothing in the services depends on which loop runs them.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a uvloop loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def install() -> None:
    """Make uvloop the loop of code that creates its own (faust's worker, uvicorn)."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
