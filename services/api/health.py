"""Liveness and readiness."""

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from litestar import Request, get
from litestar.response import Response

from projections.projector import load_offsets, seconds_behind
from services.api.context import ApiContext
from services.kafka import group_members, topic_partitions

# The projector may trail the log by this many events and still count as caught up.
MAX_PROJECTION_LAG = 1000


@get("/healthz", summary="Liveness", opt={"exclude_from_auth": True})
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class ReadinessCache:
    """One readiness check at a time, its answer reused for a moment: /readyz is public,
    and each check asks the broker and the database, so callers must not multiply it."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._answer: tuple[float, Response[dict[str, Any]]] | None = None

    async def get(self, ctx: ApiContext) -> Response[dict[str, Any]]:
        async with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer[0] > READY_CACHE_SECS:
                self._answer = (now, await _check(ctx))
            return self._answer[1]


READY_CACHE_SECS = 1.0


@get("/readyz", summary="Readiness: Kafka reachable, projector caught up",
     opt={"exclude_from_auth": True})
async def readyz(request: Request) -> Response[dict[str, Any]]:
    cache: ReadinessCache = request.app.state.readiness
    return await cache.get(request.app.state.ctx)


async def _check(ctx: ApiContext) -> Response[dict[str, Any]]:
    topic = ctx.settings.topics.events
    checks: dict[str, Any] = {}
    try:
        tps = await topic_partitions(ctx.settings.kafka_bootstrap, topic)
        ends = await ctx.bus.consumer.end_offsets(tps)
        letters = await topic_partitions(ctx.settings.kafka_bootstrap,
                                         ctx.settings.topics.deadletter)
        first = await ctx.bus.consumer.beginning_offsets(letters)
        last = await ctx.bus.consumer.end_offsets(letters)
        checks["kafka"] = "ok"
        prefix = ctx.settings.topic_prefix
        # Only the processor's (faust) group: aiokafka cannot decode Kafka 4.1's
        # description of a group of aiokafka consumers, such as the executors'.
        members = await group_members(ctx.settings.kafka_bootstrap, f"{prefix}-processor")
    except Exception as exc:  # readiness reports any failure rather than raising it
        checks["kafka"] = f"unreachable: {exc}"
        return Response({"status": "unavailable", "checks": checks}, status_code=503)
    try:
        positions = await load_offsets(ctx.engine, topic)
    except Exception as exc:
        checks["projection_store"] = f"unreachable: {exc}"
        return Response({"status": "unavailable", "checks": checks}, status_code=503)
    lag = sum(max(0, end - positions.get(tp.partition, 0)) for tp, end in ends.items())
    checks["projection_lag"] = lag
    checks["projection_lag_secs"] = await seconds_behind(
        ctx.engine, topic, [tp.partition for tp, end in ends.items()
                            if end > positions.get(tp.partition, 0)], datetime.now(UTC))
    # Records a loop could not handle and passed over (each is on the dead-letter topic
    # with its error). They do not make the service unready: the loops went on.
    checks["poisoned_records"] = sum(last[tp] - first[tp] for tp in letters)
    # A worker counts once its consumer group is Stable with members (it has partitions).
    checks["processor_workers"] = members[f"{prefix}-processor"]
    ready = lag <= MAX_PROJECTION_LAG and all(members.values())
    return Response({"status": "ready" if ready else "lagging", "checks": checks},
                    status_code=200 if ready else 503)
