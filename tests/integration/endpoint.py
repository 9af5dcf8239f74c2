"""A real HTTP endpoint on loopback for runs to call, with behaviours chosen by path.

- ``/echo``: 200 with ``{"echo": <payload>, "attempt": N}``
- ``/flaky/{n}``: 500 for the first n attempts of each run, then 200
- ``/fail/{status}``: always that status
- ``/slow/{ms}``: answers 200 after that many milliseconds
- ``/deep/{n}``: 200 with JSON nested n levels deep (``[[[...]]]``)
- ``/big/{bytes}``: 200 with a JSON string body of about that many bytes
- ``/stream/{bytes}``: like ``/big`` but chunked, with no Content-Length
- ``/redirect``: 302 to ``/echo`` on the same server (a client must not follow it)
- ``/text``: 200 with a body that is not JSON
- ``/accept``: 202 (the test then calls back with the X-Run-Token it received)
- ``/retry-after/{secs}``: 429 with ``Retry-After: secs`` on a run's first call, then 200

A cancel notice (``X-Jobledger-Notice: cancel``) is answered 200 at once, whatever the
path, and kept in ``notices``. A webhook delivery (a ``webhook-id`` header) is kept in
``hooks`` with its raw body: ``/hook`` answers 200, ``/hook-gone`` 410, ``/hook-flaky``
500 to a message's first try and 200 after, ``/hook-down`` always 500.

Every call counts as in flight until answered, per job (``X-Job-ID``) and per job and
``payload["key"]`` when the payload names one: ``peak`` keeps the most seen at once, and
``started`` the run ids in the order their calls arrived.
"""

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    payload: Any
    # When the call arrived (time.time()).
    at: float = field(default_factory=time.time)
    raw: bytes = b""


@dataclass
class Endpoint:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    started: list[str] = field(default_factory=list)
    notices: list[Received] = field(default_factory=list)
    hooks: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def for_run(self, run_id: str) -> list[Received]:
        return [r for r in self.received if r.headers.get("X-Run-ID") == run_id]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        payload = json.loads(body) if body else None
        run_id = request.headers.get("X-Run-ID", "")
        if "webhook-id" in request.headers:
            return self._hook(request, payload, body)
        if request.headers.get("X-Jobledger-Notice") == "cancel":
            self.notices.append(Received(request.path, dict(request.headers), payload))
            return web.json_response({"stopping": True})
        self.received.append(Received(request.path, dict(request.headers), payload))
        self.calls[run_id] += 1
        self.started.append(run_id)
        job = request.headers.get("X-Job-ID", "")
        groups = [job]
        if isinstance(payload, dict) and "key" in payload:
            groups.append(f"{job}/{payload['key']}")
        for group in groups:
            self.in_flight[group] += 1
            self.peak[group] = max(self.peak[group], self.in_flight[group])
        try:
            return await self._respond(request, payload, run_id)
        finally:
            for group in groups:
                self.in_flight[group] -= 1

    def _hook(self, request: web.Request, payload: Any, body: bytes) -> web.Response:
        message = request.headers["webhook-id"]
        tries = sum(h.headers.get("webhook-id") == message for h in self.hooks)
        self.hooks.append(Received(request.path, dict(request.headers), payload, raw=body))
        if request.path == "/hook-gone":
            return web.Response(status=410)
        if (request.path == "/hook-flaky" and tries == 0) or request.path == "/hook-down":
            return web.Response(status=500)
        return web.Response(status=200)

    async def _respond(self, request: web.Request, payload: Any,
                       run_id: str) -> web.StreamResponse:
        attempt = int(request.headers.get("X-Attempt", "0"))
        parts = request.path.strip("/").split("/")
        match parts:
            case ["flaky", n] if self.calls[run_id] <= int(n):
                return web.json_response({"error": "try again"}, status=500)
            case ["fail", status]:
                return web.json_response({"error": "nope"}, status=int(status))
            case ["slow", ms]:
                await asyncio.sleep(int(ms) / 1000)
            case ["deep", n]:
                return web.Response(body=b"[" * int(n) + b"]" * int(n),
                                    content_type="application/json")
            case ["big", size]:
                return web.Response(body=b'"' + b"x" * int(size) + b'"',
                                    content_type="application/json")
            case ["stream", size]:
                stream = web.StreamResponse(headers={"Content-Type": "application/json"})
                stream.enable_chunked_encoding()
                await stream.prepare(request)
                await stream.write(b'"')
                for start in range(0, int(size), 65536):
                    await stream.write(b"x" * min(65536, int(size) - start))
                await stream.write(b'"')
                await stream.write_eof()
                return stream
            case ["redirect"]:
                return web.Response(status=302, headers={"Location": f"{self.base_url}/echo"})
            case ["text"]:
                return web.Response(text="plain words, not JSON")
            case ["accept"]:
                return web.json_response({"accepted": True}, status=202)
            case ["retry-after", secs] if self.calls[run_id] == 1:
                return web.json_response({"error": "slow down"}, status=429,
                                         headers={"Retry-After": secs})
        return web.json_response({"echo": payload, "attempt": attempt})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
