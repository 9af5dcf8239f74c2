"""The Litestar app factory and the process entry point."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from projections.db import create_schema, make_engine
from schemas.api import Accepted, ErrorBody
from services.api.auth import KeyRing
from services.api.bus import CommandBus
from services.api.context import ApiContext, CommandRejected, StillPending
from services.api.health import healthz, readyz
from services.api.jobs import create_job, read_job, trigger_job
from services.api.runs import cancel_run, read_run, run_events
from services.api.visibility import ProjectionWatcher
from services.config import Settings
from services.kafka import ensure_topics, make_consumer, make_producer, wait_for_broker

log = logging.getLogger(__name__)


def _rejected(_: Request[Any, Any, Any], exc: CommandRejected) -> Response[ErrorBody]:
    return Response(ErrorBody(status_code=exc.status_code, detail=exc.reason, code=exc.code),
                    status_code=exc.status_code)


def _pending(_: Request[Any, Any, Any], exc: StillPending) -> Response[Accepted]:
    headers = {"Location": exc.location} if exc.location else {}
    return Response(Accepted(command_id=exc.command_id, location=exc.location),
                    status_code=202, headers=headers)


def _invalid(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    # Litestar puts the field and msgspec's message in ``extra``; say both in the detail.
    problems = [e for e in (exc.extra or []) if isinstance(e, dict)]
    detail = "; ".join(
        f"{p['key']}: {p.get('message', 'invalid')}" if p.get("key") else p.get("message", "")
        for p in problems) or exc.detail
    return Response(ErrorBody(status_code=400, detail=detail, code="invalid_request"),
                    status_code=400)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    return Response(ErrorBody(status_code=exc.status_code, detail=exc.detail),
                    status_code=exc.status_code, headers=exc.headers)


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def kafka_and_store(app: Litestar) -> AsyncIterator[None]:
        await wait_for_broker(settings.kafka_bootstrap)
        await ensure_topics(settings.kafka_bootstrap, settings.topics, settings.partitions)
        engine = make_engine(settings.database_url)
        await create_schema(engine)
        producer = make_producer(settings.kafka_bootstrap)
        consumer = make_consumer(settings.kafka_bootstrap)
        await producer.start()
        await consumer.start()
        bus = CommandBus(settings, producer, consumer)
        await bus.start()
        watcher = ProjectionWatcher(engine)
        watcher.start()
        app.state.ctx = ApiContext(settings, bus, engine, KeyRing(settings), watcher)
        try:
            yield
        finally:
            await watcher.stop()
            await bus.stop()
            await consumer.stop()
            await producer.stop()
            await engine.dispose()

    return Litestar(
        route_handlers=[healthz, readyz, create_job, read_job, trigger_job, read_run,
                        cancel_run, run_events],
        lifespan=[kafka_and_store],
        exception_handlers={
            CommandRejected: _rejected,
            StillPending: _pending,
            ValidationException: _invalid,
            HTTPException: _http,
        },
        request_max_body_size=settings.max_payload_bytes,
        openapi_config=OpenAPIConfig(
            title="jobledger", version="0.1.0", path="/docs",
            render_plugins=[SwaggerRenderPlugin()],
            description="Event-sourced job service: jobs, runs, their history."),
    )
