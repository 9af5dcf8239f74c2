"""The worker process: applies schemas to payloads, one request at a time, and the wire
protocol it speaks with the API process (see ``process`` for the API's side).

Wire protocol, over a socket pair: every message is a 4-byte big-endian length
(``_HEADER``) and a body. The worker first sends ``b"ready"``. A request is a pickle of
``(kind, schema, payload, budget)``, ``kind`` being ``"validate"`` or ``"check"`` and
schema and payload encoded by ``_encode`` (msgspec JSON: ~0.5 ms for a 300 KB payload,
pickle is 5x slower; pickle only for what JSON cannot carry). The reply is a JSON list:
``["ok"]``, ``["invalid", path, reason]``, ``["refused", path, reason]`` or
``["error", reason]`` (any other failure, answered "could not be applied").

Compiled validators are cached (LRU, ``_VALIDATOR_CACHE`` entries) keyed by the encoded
schema (the same stored job spec encodes identically). On a cache miss the worker runs
``check_schema`` again, so a schema stored before these rules existed gives a clear
"could not be applied" answer. A schema whose ``$ref`` loops without consuming input hits
Python's recursion limit here and is answered the same way.

The API process SIGKILLs a worker that overruns its budget; should the API process die
mid-validation, the worker's own SIGALRM (budget + ``_ALARM_GRACE_SECS``) ends it, and on
EOF it exits.
"""

from __future__ import annotations

import json
import pickle
import signal
import socket
import struct
from collections import OrderedDict
from typing import Any

from jsonschema.exceptions import best_match
from msgspec import json as msgspec_json

from services.api.payload_schema.keywords import _Validator
from services.api.payload_schema.rules import (
    _REGISTRY,
    SchemaRefused,
    _clip,
    _join,
    check_schema,
)

_VALIDATOR_CACHE = 64
_ALARM_GRACE_SECS = 5.0

_HEADER = struct.Struct(">I")
_ENCODER = msgspec_json.Encoder()


def _encode(value: Any) -> tuple[str, bytes]:
    """JSON (fast); pickle for what JSON cannot carry (lone surrogates, odd types)."""
    try:
        return "j", _ENCODER.encode(value)
    except Exception:
        return "p", pickle.dumps(value, 5)


def _decode(encoded: tuple[str, bytes]) -> Any:
    kind, data = encoded
    return msgspec_json.decode(data) if kind == "j" else pickle.loads(data)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _apply(validator: Any, payload: Any) -> list[Any]:
    error = best_match(validator.iter_errors(payload))
    if error is None:
        return ["ok"]
    return ["invalid", _join("payload", error.absolute_path), _clip(error.message)]


def _serve(kind: str, schema_key: tuple[str, bytes], payload: tuple[str, bytes],
           cache: OrderedDict[tuple[str, bytes], Any]) -> list[Any]:
    try:
        if kind == "check":
            try:
                check_schema(_decode(schema_key))
            except SchemaRefused as exc:
                return ["refused", exc.path, exc.reason]
            return ["ok"]
        validator = cache.get(schema_key)
        if validator is None:
            schema = _decode(schema_key)
            try:
                check_schema(schema)
            except SchemaRefused as exc:
                return ["error", _clip(f"{exc.path}: {exc.reason}")]
            validator = cache[schema_key] = _Validator(schema, registry=_REGISTRY)
            if len(cache) > _VALIDATOR_CACHE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(schema_key)
        return _apply(validator, _decode(payload))
    except Exception as exc:
        return ["error", _clip(f"{type(exc).__name__}: {exc}")]


def _worker_main(fd: int) -> None:
    """The worker process: one request at a time from the socket ``fd``; exits on EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    _apply(_Validator({"type": "object", "pattern": "a"}, registry=_REGISTRY), {})  # warm up
    cache: OrderedDict[tuple[str, bytes], Any] = OrderedDict()
    try:
        sock.sendall(_HEADER.pack(5) + b"ready")
        while True:
            header = _recv_exactly(sock, _HEADER.size)
            if header is None:
                return
            body = _recv_exactly(sock, _HEADER.unpack(header)[0])
            if body is None:
                return
            kind, schema_key, payload, budget = pickle.loads(body)
            # the parent kills us when the budget passes; should it be gone, SIGALRM's
            # default action ends this process anyway
            signal.setitimer(signal.ITIMER_REAL, budget + _ALARM_GRACE_SECS)
            reply = json.dumps(_serve(kind, schema_key, payload, cache)).encode()
            signal.setitimer(signal.ITIMER_REAL, 0)
            sock.sendall(_HEADER.pack(len(reply)) + reply)
    except OSError:
        return
