"""The Litestar app factory."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from projections.live_store import LiveStore
from schemas.api import Accepted
from services.api import payload_schema
from services.api.auth import KeyRing, auth_middleware
from services.api.bulk import trigger_bulk
from services.api.bus import CommandBus
from services.api.callbacks import CALLBACK_ROUTES
from services.api.context import ApiContext, StillPending
from services.api.contract import complete_openapi
from services.api.dead_letters import list_dlq, replay_run
from services.api.dependencies import DEPENDENCY_ROUTES
from services.api.errors import EXCEPTION_HANDLERS, request_id_of
from services.api.health import ReadinessCache, healthz, readyz
from services.api.job_batch import clone_job, create_jobs
from services.api.job_delete import delete_job
from services.api.job_health import read_job_health
from services.api.job_list import list_jobs_route
from services.api.job_toggles import batch_disable, batch_enable
from services.api.job_versions import list_versions, read_version, update_job
from services.api.jobs import create_job, read_job, trigger_job
from services.api.metrics import read_metrics_route
from services.api.operations import cancel_waiting, read_operation
from services.api.options import allow_every_method
from services.api.quotas import read_quotas, set_quotas
from services.api.retention import read_retention, set_retention
from services.api.run_list import list_runs_route, run_children, run_lineage
from services.api.runs import cancel_run, read_run, run_events, run_messages
from services.api.stream_hub import StreamHub
from services.api.streams import STREAM_ROUTES
from services.api.visibility import ProjectionWatcher
from services.config import Settings
from services.kafka import ensure_topics, make_consumer, make_producer, wait_for_broker
from services.runtoken import load_secret

log = logging.getLogger(__name__)


def _pending(request: Request[Any, Any, Any], exc: StillPending) -> Response[Accepted]:
    headers = {"X-Request-ID": request_id_of(request)}
    if exc.location:
        headers["Location"] = exc.location
    body = Accepted(command_id=exc.command_id, id=exc.resource_id, location=exc.location)
    if exc.asked:
        headers["Preference-Applied"] = "respond-async"
        body.detail = "accepted by the processor; poll location to see it"
    return Response(body, status_code=202, headers=headers)


async def _follow_generations(store: LiveStore, ctx: ApiContext, streams: StreamHub) -> None:
    """Serve from the generation a rebuild made live, within about a second of the
    switch (requests already under way finish on the old one). Open streams end: they
    read the old generation, and clients reconnect to the new one with their last id."""
    while True:
        await asyncio.sleep(store.check_secs)
        try:
            if await store.switched():
                ctx.engine = ctx.watcher.engine = store.engine
                streams.end_open()
        except Exception as exc:  # keep serving the old generation; look again later
            log.warning("opening the new generation failed: %s", exc)


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def kafka_and_store(app: Litestar) -> AsyncIterator[None]:
        await wait_for_broker(settings.kafka_bootstrap)
        await ensure_topics(settings.kafka_bootstrap, settings.topics, settings.partitions)
        # Migrating is safe while the projector migrates too (projections.migrate).
        store = LiveStore(settings.database_url)
        engine = await store.open()
        producer = make_producer(settings.kafka_bootstrap)
        consumer = make_consumer(settings.kafka_bootstrap)
        await producer.start()
        await consumer.start()
        bus = CommandBus(settings, producer, consumer)
        await bus.start()
        notices = make_consumer(settings.kafka_bootstrap)
        await notices.start()
        watcher = ProjectionWatcher(engine, notices, settings.kafka_bootstrap,
                                    settings.topics.projected)
        await watcher.start()
        watcher.listeners.append(app.state.streams.applied)
        await payload_schema.start()  # the validator workers, before the first trigger
        app.state.ctx = ApiContext(settings, bus, engine, app.state.keyring, watcher,
                                   token_secret=load_secret(settings))
        follower = asyncio.create_task(_follow_generations(store, app.state.ctx,
                                                         app.state.streams))
        try:
            yield
        finally:
            app.state.streams.stop_all()  # before what the streams read from goes away
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            await watcher.stop()
            await notices.stop()
            await bus.stop()
            await consumer.stop()
            await producer.stop()
            await store.close()
            await payload_schema.close()

    app = Litestar(
        route_handlers=[healthz, readyz, create_job, read_job, trigger_job, trigger_bulk,
                        read_quotas, set_quotas, read_retention, set_retention,
                        read_run, cancel_run, run_events, batch_enable, batch_disable,
                        delete_job, update_job, list_versions, read_version,
                        list_jobs_route, list_runs_route, run_children, run_lineage,
                        read_job_health, read_metrics_route,
                        create_jobs, clone_job, run_messages,
                        list_dlq, replay_run, cancel_waiting, read_operation,
                        *CALLBACK_ROUTES, *DEPENDENCY_ROUTES, *STREAM_ROUTES],
        lifespan=[kafka_and_store],
        middleware=[auth_middleware()],
        before_send=[allow_every_method],
        exception_handlers={**EXCEPTION_HANDLERS, StillPending: _pending},
        request_max_body_size=settings.max_payload_bytes,
        openapi_config=OpenAPIConfig(
            title="jobledger", version="0.1.0", path="/docs",
            render_plugins=[SwaggerRenderPlugin()],
            description="Event-sourced job service: jobs, runs, their history. "
                        "Every error answers {\"error\": {\"code\", \"message\", "
                        "\"details\"}, \"request_id\"}."),
    )
    app.state.keyring = KeyRing(settings)
    app.state.readiness = ReadinessCache()
    app.state.streams = StreamHub(settings.max_streams)
    complete_openapi(app.plugins.get(OpenAPIPlugin).provide_openapi_schema())
    return app
