"""A job's ``payload_schema``: checked once at creation, applied to every trigger's payload
without ever stalling the event loop (issue 5).

Public API::

    check_schema(schema)                        # sync; raises SchemaRefused(path, reason)
    await check_schema_async(schema)            # the same, in a worker process, with a budget
    await validate_payload(schema, payload)     # raises PayloadInvalid(path, reason)
    await start()  /  await close()             # the app's lifespan (start is optional)

A schema must be a self-contained JSON Schema, draft 2020-12, whose patterns compile with
RE2 (a linear-time regex engine) and whose size is bounded. Even so a schema can cost
exponential time, so payloads are validated in a small pool of worker processes, each
call with a hard time budget after which the worker is killed: a pathological schema
costs the caller a ``PayloadInvalid``, never a blocked event loop. ``SchemaRefused`` and
``PayloadInvalid`` are the client's fault (4xx); ``ValidatorUnavailable`` means no worker
could take the call in time (503).

Modules, in dependency order:

- ``regex``: RE2 with ECMA-262's ``\\uXXXX`` escapes, the only regex engine used.
- ``rules``: what a schema may be (``check_schema``), its limits, the errors.
- ``keywords``: the validator, jsonschema's 2020-12 with RE2 and a linear ``uniqueItems``.
- ``worker``: the worker process's loop and the wire protocol.
- ``process``: the API's handle on one worker process (spawn, exchange, kill).
- ``pool``: ``ValidatorPool``, the budgets, the default pool and the async API.
- ``__main__``: ``python -m services.api.payload_schema --bench``.
"""

from services.api.payload_schema.pool import (
    BUDGET_SECS,
    CHECK_BUDGET_SECS,
    STARTUP_SECS,
    WAIT_SECS,
    WORKERS,
    ValidatorPool,
    check_schema_async,
    close,
    start,
    validate_payload,
)
from services.api.payload_schema.regex import to_re2
from services.api.payload_schema.rules import (
    MAX_DEPTH,
    MAX_PATTERN_CHARS,
    MAX_PATTERNS,
    MAX_SUBSCHEMAS,
    MAX_TEXT,
    PayloadInvalid,
    SchemaRefused,
    ValidatorUnavailable,
    check_schema,
)

__all__ = ["BUDGET_SECS", "CHECK_BUDGET_SECS", "MAX_DEPTH", "MAX_PATTERNS",
           "MAX_PATTERN_CHARS", "MAX_SUBSCHEMAS", "MAX_TEXT", "STARTUP_SECS", "WAIT_SECS",
           "WORKERS", "PayloadInvalid", "SchemaRefused", "ValidatorPool",
           "ValidatorUnavailable", "check_schema", "check_schema_async", "close", "start",
           "to_re2", "validate_payload"]
