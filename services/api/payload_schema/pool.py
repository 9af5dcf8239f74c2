"""Validating on the event loop's behalf: ``ValidatorPool``, the default pool, and the async
API (``validate_payload``, ``check_schema_async``, ``start``, ``close``).

Even with RE2 a schema can be pathological: ``anyOf`` chains through ``$ref`` evaluate
2**n branches for a *tiny* payload, ``unevaluatedProperties`` re-evaluates subschemas,
RE2 falls back from its DFA to an O(text x pattern) NFA when its memory budget runs out.
So the size of the input says nothing about the cost, and a Python thread cannot be
stopped (and would hold the GIL against the event loop for 5 ms slices). Therefore every
validation runs in a small pool of worker *processes* (``WORKERS``, default 2, spawned
lazily, see ``process``). The event loop only encodes the request and talks to the worker
over a non-blocking socket.

If the reply is not back within the budget (``BUDGET_SECS``, default 1.0 s) the worker is
SIGKILLed, the caller gets ``PayloadInvalid("payload", "validation took longer than 1 s")``,
and a fresh worker is spawned in the background for that slot (~0.2 s). A cancelled caller
(client gone) does not cancel the exchange: it finishes or hits the budget on its own, so
a worker is never left with an unread reply.

Any failure other than a validation error (an exception in the worker, the worker dying)
becomes ``PayloadInvalid("payload", "payload_schema could not be applied: ...")``, never
a 500. When no worker becomes free within ``WAIT_SECS`` (5 s; e.g. every worker busy with
budget-long validations) or a worker cannot be started, ``ValidatorUnavailable`` is
raised: a server-side condition, meant to be answered 503. ``check_schema_async`` does
the same for ``check_schema``, within ``CHECK_BUDGET_SECS``, answering ``SchemaRefused``.

Per-call overhead, trivial schema and a 1 KB payload, measured on the development box
(2 vCPU): about 0.24 ms per call (``python -m services.api.payload_schema --bench``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
from typing import Any

from services.api.payload_schema.process import _Worker
from services.api.payload_schema.rules import (
    PayloadInvalid,
    SchemaRefused,
    ValidatorUnavailable,
    _clip,
    check_schema,
)
from services.api.payload_schema.worker import _encode

BUDGET_SECS = 1.0          # hard limit for one payload validation (the worker is killed)
CHECK_BUDGET_SECS = 2.0    # the same for check_schema_async
WORKERS = 2                # worker processes in the default pool
WAIT_SECS = 5.0            # longest wait for a free worker before ValidatorUnavailable
STARTUP_SECS = 30.0        # longest wait for a new worker to be ready


class _BudgetExceeded(Exception):
    pass


class _WorkerDied(Exception):
    pass



class _Slot:
    worker: _Worker | None = None


class ValidatorPool:
    """``workers`` worker processes, each doing one validation at a time."""

    def __init__(self, workers: int = WORKERS, *, wait_secs: float = WAIT_SECS,
                 startup_secs: float = STARTUP_SECS) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._size = workers
        self._wait_secs = wait_secs
        self._startup_secs = startup_secs
        self._idle: asyncio.Queue[_Slot] | None = None
        self._workers: set[_Worker] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def _queue(self) -> asyncio.Queue[_Slot]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self._size):
                self._idle.put_nowait(_Slot())
        return self._idle

    def _background(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()   # retrieved: a caller that went away does not log it

    async def _spawn(self, slot: _Slot) -> _Worker:
        try:
            worker = await _Worker.spawn(self._startup_secs)
        except (OSError, EOFError, TimeoutError) as exc:
            raise ValidatorUnavailable(f"could not start a payload validator: {exc}") from exc
        if self._closed:
            worker.kill()
            self._background(asyncio.to_thread(worker.reap, 1.0))
            raise ValidatorUnavailable("the payload validator is closed")
        self._workers.add(worker)
        slot.worker = worker
        return worker

    def _retire(self, slot: _Slot) -> None:
        worker, slot.worker = slot.worker, None
        if worker is not None:
            self._workers.discard(worker)
            worker.kill()
            self._background(asyncio.to_thread(worker.reap, 1.0))

    async def _respawn(self, slot: _Slot) -> None:
        try:
            await self._spawn(slot)
        except ValidatorUnavailable:
            pass    # the next caller tries again
        finally:
            self._queue().put_nowait(slot)

    async def _exchange(self, slot: _Slot, request: bytes, budget: float) -> list[Any]:
        respawn = False
        try:
            worker = slot.worker or await self._spawn(slot)
            try:
                async with asyncio.timeout(budget):
                    reply = await worker.exchange(request)
            except TimeoutError:
                respawn = True
                raise _BudgetExceeded() from None
            except (OSError, EOFError) as exc:
                respawn = True
                raise _WorkerDied(str(exc)) from exc
            result = json.loads(reply)
            if not isinstance(result, list) or not result:
                respawn = True
                raise _WorkerDied("malformed reply")
            return result
        finally:
            if respawn:
                self._retire(slot)
            if respawn and not self._closed:
                self._background(self._respawn(slot))
            else:
                self._queue().put_nowait(slot)

    async def _run(self, request: bytes, budget: float) -> list[Any]:
        if self._closed:
            raise ValidatorUnavailable("the payload validator is closed")
        try:
            slot = await asyncio.wait_for(self._queue().get(), self._wait_secs)
        except TimeoutError:
            raise ValidatorUnavailable(
                f"no payload validator became free within {self._wait_secs:g} s") from None
        # shielded: a caller that goes away leaves the exchange to finish (or hit the
        # budget) on its own, so no worker is left holding an unread reply
        return await asyncio.shield(self._background(self._exchange(slot, request, budget)))

    async def start(self) -> None:
        """Spawn every worker now (optional: they are otherwise spawned on first use)."""
        async def one() -> None:
            slot = await self._queue().get()
            try:
                if slot.worker is None:
                    await self._spawn(slot)
            finally:
                self._queue().put_nowait(slot)

        await asyncio.gather(*(one() for _ in range(self._size)))

    async def validate(self, schema: Any, payload: Any, budget: float = BUDGET_SECS) -> None:
        if schema is None:
            return
        try:
            request = pickle.dumps(("validate", _encode(schema), _encode(payload), budget), 5)
        except Exception as exc:
            raise PayloadInvalid("payload", "payload_schema could not be applied: "
                                 + _clip(f"{type(exc).__name__}: {exc}")) from exc
        try:
            result = await self._run(request, budget)
        except _BudgetExceeded:
            raise PayloadInvalid("payload",
                                 f"validation took longer than {budget:g} s") from None
        except _WorkerDied as exc:
            raise PayloadInvalid("payload", "payload_schema could not be applied: the "
                                 f"validator process failed ({exc})") from None
        if result[0] == "ok":
            return
        if result[0] == "invalid":
            raise PayloadInvalid(str(result[1]), str(result[2]))
        raise PayloadInvalid("payload",
                             "payload_schema could not be applied: " + str(result[-1]))

    async def check(self, schema: Any, budget: float = CHECK_BUDGET_SECS) -> None:
        if not isinstance(schema, dict | bool):
            check_schema(schema)   # raises
        try:
            request = pickle.dumps(("check", _encode(schema), _encode(None), budget), 5)
        except Exception as exc:
            raise SchemaRefused("payload_schema", "could not be checked: "
                                + _clip(f"{type(exc).__name__}: {exc}")) from exc
        try:
            result = await self._run(request, budget)
        except _BudgetExceeded:
            raise SchemaRefused("payload_schema",
                                f"checking it took longer than {budget:g} s") from None
        except _WorkerDied as exc:
            raise SchemaRefused("payload_schema", f"could not be checked ({exc})") from None
        if result[0] == "ok":
            return
        if result[0] == "refused":
            raise SchemaRefused(str(result[1]), str(result[2]))
        raise SchemaRefused("payload_schema", "could not be checked: " + str(result[-1]))

    async def close(self) -> None:
        """Stop every worker (EOF, then SIGKILL after 1 s). Idempotent."""
        self._closed = True
        workers, self._workers = list(self._workers), set()
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.sock.close()
        await asyncio.gather(*(asyncio.to_thread(w.reap, 1.0) for w in workers))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


_pool: ValidatorPool | None = None


def _default_pool() -> ValidatorPool:
    global _pool
    if _pool is None:
        _pool = ValidatorPool(WORKERS)
    return _pool


async def validate_payload(schema: Any, payload: Any, *, budget: float | None = None) -> None:
    """Raise ``PayloadInvalid`` unless ``payload`` matches ``schema`` (see the module
    docstring); ``ValidatorUnavailable`` when no worker can take it (answer 503)."""
    await _default_pool().validate(schema, payload, BUDGET_SECS if budget is None else budget)


async def check_schema_async(schema: Any, *, budget: float | None = None) -> None:
    """``check_schema`` in a worker process, within ``budget`` (``CHECK_BUDGET_SECS``)."""
    await _default_pool().check(schema, CHECK_BUDGET_SECS if budget is None else budget)


async def start(workers: int | None = None) -> None:
    """Spawn the default pool's workers now (e.g. in the app's lifespan)."""
    global _pool
    if _pool is None:
        _pool = ValidatorPool(workers or WORKERS)
    await _pool.start()


async def close() -> None:
    """Stop the default pool's workers; a later call starts a new pool."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        await pool.close()
