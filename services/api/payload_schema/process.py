"""The API process's handle on one worker process: spawn it, exchange a request and its
reply without blocking the event loop, kill and reap it.

Workers are started with ``subprocess`` (``python -c``, importing only this package), not
forked, so nothing of the API's own state (event loop, sockets, threads) is inherited.
Each gets one end of a socket pair and its own session (a Ctrl-C is the parent's to
handle). The event loop side is a non-blocking socket; the protocol is in ``worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

from services.api.payload_schema.worker import _HEADER

_MODULE = "services.api.payload_schema.worker"   # where _worker_main lives
_MAX_REPLY = 1 << 20


def _popen_worker(fd: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    code = f"import sys; from {_MODULE} import _worker_main; _worker_main(int(sys.argv[1]))"
    return subprocess.Popen([sys.executable, "-c", code, str(fd)], pass_fds=(fd,), env=env,
                            stdin=subprocess.DEVNULL, start_new_session=True)


class _Worker:
    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self.sock = sock

    @classmethod
    async def spawn(cls, startup_secs: float) -> _Worker:
        parent, child = socket.socketpair()
        popen = asyncio.ensure_future(asyncio.to_thread(_popen_worker, child.fileno()))
        try:
            process = await asyncio.shield(popen)    # never close ``child`` under Popen
        except BaseException:
            def abandon(done: asyncio.Future[subprocess.Popen[bytes]]) -> None:
                child.close()
                parent.close()
                if not done.cancelled() and done.exception() is None:
                    done.result().kill()

            popen.add_done_callback(abandon)
            raise
        child.close()
        parent.setblocking(False)
        worker = cls(process, parent)
        try:
            async with asyncio.timeout(startup_secs):
                hello = await worker._recv()
            if hello != b"ready":
                raise EOFError("unexpected greeting")
        except BaseException:
            worker.kill()
            raise
        return worker

    async def _recv(self) -> bytes:
        loop = asyncio.get_running_loop()

        async def exactly(size: int) -> bytes:
            buffer = bytearray(size)
            view, got = memoryview(buffer), 0
            while got < size:
                n = await loop.sock_recv_into(self.sock, view[got:])
                if n == 0:
                    raise EOFError("the validator process closed its socket")
                got += n
            return bytes(buffer)

        (size,) = _HEADER.unpack(await exactly(_HEADER.size))
        if size > _MAX_REPLY:
            raise EOFError("reply too large")
        return await exactly(size)

    async def exchange(self, request: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, _HEADER.pack(len(request)) + request)
        return await self._recv()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            self.process.kill()

    def reap(self, timeout: float) -> None:
        """Blocking: wait for the process, killing it after ``timeout``."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self.process.kill()
            self.process.wait()
