"""The live streams one API process has open: their number, their wake-ups, their stop.

A stream sleeps until the projector announces a batch (the ProjectionWatcher hears the
``projected`` notice and calls ``applied``) that moved its job (or any job, for a stream
not bound to one); a slow poll in the stream itself covers a lost notice. The number of
open streams is capped per process: each holds a connection and reads now and then.
"""

import asyncio
from dataclasses import dataclass, field

from services.api.errors import ApiError


@dataclass(eq=False)
class Subscription:
    """One open stream: woken when its job (None: any job) moves, stopped at shutdown."""

    hub: "StreamHub"
    job_id: str | None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: bool = False

    def close(self) -> None:
        """Leave the hub (idempotent): the stream's slot is free again."""
        self.hub.subscriptions.discard(self)


class StreamHub:
    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self.subscriptions: set[Subscription] = set()
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, job_id: str | None) -> Subscription:
        """A slot for a new stream, or 429 when every slot is taken (503 when stopping)."""
        if self.stopping:
            raise ApiError(503, "the server is stopping; reconnect to another one",
                           headers={"Retry-After": "1"})
        if len(self.subscriptions) >= self.max_streams:
            raise ApiError(429, f"this server has {self.max_streams} live streams open, "
                                "its most; try again later", headers={"Retry-After": "5"})
        self._loop = asyncio.get_running_loop()
        subscription = Subscription(self, job_id)
        self.subscriptions.add(subscription)
        return subscription

    def applied(self, positions: dict[str, int]) -> None:
        """The projection has applied these jobs' events: wake their streams."""
        for subscription in self.subscriptions:
            if subscription.job_id is None or subscription.job_id in positions:
                subscription.wake.set()

    def stop_all(self) -> None:
        """End every stream (at their next step) and open no new one."""
        self.stopping = True
        self.end_open()

    def end_open(self) -> None:
        """End the streams open now (at their next step); new ones may open."""
        for subscription in list(self.subscriptions):
            subscription.stopped = True
            subscription.wake.set()

    def stop_all_soon(self) -> None:
        """``stop_all`` from a signal handler: run on the loop, not inside the handler."""
        self.stopping = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.stop_all)
