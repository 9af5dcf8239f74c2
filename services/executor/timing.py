"""Where one call's time goes.

Opening a connection is timed inside the executor's connector (``TimedConnector``): only
a new connection has that step, and aiohttp offers no public hook for it but its tracing
signals. Those cost a Trace object and eight signal sends on every request, paid on every
attempt for two numbers; the connector's own step costs nothing on a reused connection.
The rest is timed around the call itself (``call.py``).
"""

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from aiohttp import ClientRequest, ClientTimeout, TCPConnector
from aiohttp.client_proto import ResponseHandler
from aiohttp.tracing import Trace


@dataclass(slots=True)
class Timings:
    """Moments of one attempt (time.perf_counter), filled in as the call goes. With a
    fallback, the request and connection moments are the last call's, ``request`` the
    first's (the exchange as a whole)."""

    taken: float
    taken_wall: float = field(default_factory=time.time)
    request: float | None = None  # the first request started
    last_request: float | None = None  # the last request (the fallback's) started
    connect_start: float | None = None
    connect_end: float | None = None
    headers: float | None = None  # the response's headers came in
    body: float | None = None  # the response's body was read
    ended: float = 0.0

    def started(self) -> None:
        """A request (the first, or the fallback's) is about to go out."""
        now = time.perf_counter()
        self.request = self.request or now
        self.last_request = now
        self.connect_start = self.connect_end = self.headers = None

    @property
    def sent(self) -> float | None:
        """When the request went out: once its connection was open (a reused one is)."""
        return self.connect_end or self.last_request

    @staticmethod
    def span(start: float | None, end: float | None) -> float | None:
        if start is None or end is None:
            return None
        return round(max(0.0, end - start) * 1000, 3)

    def connect_ms(self) -> float | None:
        if self.request is None:
            return None
        # A reused connection costs nothing to open.
        return self.span(self.connect_start, self.connect_end) or 0.0


# The attempt being called in this task; the connector runs in the caller's task.
current_timings: ContextVar[Timings | None] = ContextVar("current_timings", default=None)


class TimedConnector(TCPConnector):
    """aiohttp's TCP connector, timing each connection it opens into the caller's
    ``current_timings``."""

    async def _create_connection(self, req: ClientRequest, traces: list[Trace],
                                 timeout: ClientTimeout) -> ResponseHandler:
        timings = current_timings.get()
        if timings is not None:
            timings.connect_start = time.perf_counter()
        try:
            return await super()._create_connection(req, traces, timeout)
        finally:
            if timings is not None:
                timings.connect_end = time.perf_counter()
