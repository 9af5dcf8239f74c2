"""The benchmark's loopback endpoint, in a process of its own: Celery tasks and jobledger
runs call the same one, so neither side's load generator shares a loop with it.

    python -m tests.bench.endpoint      # prints its port on the first line of stdout

- ``POST /noop``: reads and parses the JSON body, answers 200 ``{"ok": true}``
- ``POST /hang``: never answers while the bench lasts (the backlog case's job)
- ``GET /count``: how many ``/noop`` calls it has answered

Standard library and aiohttp only (aiohttp is a service dependency). Stops on SIGTERM.
"""

import asyncio
import json
import signal
import sys

from aiohttp import web


async def main() -> None:
    answered = 0
    stop = asyncio.Event()

    async def noop(request: web.Request) -> web.Response:
        nonlocal answered
        json.loads(await request.read() or b"null")
        answered += 1
        return web.json_response({"ok": True})

    async def hang(request: web.Request) -> web.Response:
        await request.read()
        await stop.wait()
        return web.json_response({"ok": False}, status=503)

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"noop": answered})

    app = web.Application()
    app.router.add_post("/noop", noop)
    app.router.add_post("/hang", hang)
    app.router.add_get("/count", count)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
