"""``python -m services.api.payload_schema --bench``: the per-call overhead of a payload
validation (sequential calls to one worker, trivial schema, ~1 KB payload)."""

from __future__ import annotations

import asyncio
import sys
import time

from services.api.payload_schema.pool import ValidatorPool


async def _bench(calls: int = 2_000) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    payload = {"name": "x" * 1000}
    pool = ValidatorPool(1)
    await pool.start()
    try:
        await pool.validate(schema, payload)
        started = time.perf_counter()
        for _ in range(calls):
            await pool.validate(schema, payload)
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    print(f"{calls} sequential calls, trivial schema, ~1 KB payload: "
          f"{elapsed / calls * 1e6:.0f} us per call")


if __name__ == "__main__" and sys.argv[1:] == ["--bench"]:
    asyncio.run(_bench())
