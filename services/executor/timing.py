"""Where one call's time goes, from aiohttp's tracing signals (its own hooks into the
request's life, so nothing is guessed from outside the client)."""

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp


@dataclass(slots=True)
class Timings:
    """Moments of one attempt (time.perf_counter), filled in as the call goes. With a
    fallback, the request and connection moments are the last call's, ``request`` the
    first's (the exchange as a whole)."""

    taken: float
    taken_wall: float = field(default_factory=time.time)
    request: float | None = None  # the first request started
    connect_start: float | None = None
    connect_end: float | None = None
    sent: float | None = None  # the request's headers went out
    headers: float | None = None  # the response's headers came in
    body: float | None = None  # the response's body was read
    ended: float = 0.0

    def started(self) -> None:
        """A request (the first, or the fallback's) is about to go out."""
        self.request = self.request or time.perf_counter()
        self.connect_start = self.connect_end = self.sent = self.headers = None

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


def _timings(context: SimpleNamespace) -> Timings | None:
    found = context.trace_request_ctx
    return found if isinstance(found, Timings) else None


async def _connect_start(session: Any, context: SimpleNamespace, params: Any) -> None:
    if (t := _timings(context)) is not None:
        t.connect_start = time.perf_counter()


async def _connect_end(session: Any, context: SimpleNamespace, params: Any) -> None:
    if (t := _timings(context)) is not None:
        t.connect_end = time.perf_counter()


async def _headers_sent(session: Any, context: SimpleNamespace, params: Any) -> None:
    if (t := _timings(context)) is not None:
        t.sent = time.perf_counter()


async def _request_end(session: Any, context: SimpleNamespace, params: Any) -> None:
    # aiohttp signals the end of the request once the response's headers are read.
    if (t := _timings(context)) is not None:
        t.headers = time.perf_counter()


def trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_connection_create_start.append(_connect_start)
    config.on_connection_create_end.append(_connect_end)
    config.on_request_headers_sent.append(_headers_sent)
    config.on_request_end.append(_request_end)
    return config
