"""Liveness and readiness."""

from typing import Any

from aiokafka import TopicPartition
from litestar import Request, get
from litestar.response import Response
from projections.queries import load_offsets

from services.api.context import ApiContext

# The projector may trail the log by this many events and still count as caught up.
MAX_PROJECTION_LAG = 1000


@get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Readiness: Kafka reachable, projector caught up")
async def readyz(request: Request) -> Response[dict[str, Any]]:
    ctx: ApiContext = request.app.state.ctx
    topic = ctx.settings.topics.events
    checks: dict[str, Any] = {}
    try:
        consumer = ctx.bus.consumer
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        checks["kafka"] = "ok"
    except Exception as exc:  # readiness reports any failure rather than raising it
        checks["kafka"] = f"unreachable: {exc}"
        return Response({"status": "unavailable", "checks": checks}, status_code=503)
    positions = await load_offsets(ctx.engine, topic)
    lag = sum(max(0, end - positions.get(tp.partition, 0)) for tp, end in ends.items())
    checks["projection_lag"] = lag
    ready = lag <= MAX_PROJECTION_LAG
    return Response({"status": "ready" if ready else "lagging", "checks": checks},
                    status_code=200 if ready else 503)
