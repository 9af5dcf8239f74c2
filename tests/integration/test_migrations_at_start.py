"""Schema migrations as the services apply them at start, on the real broker: the API and
the projector start together on an empty database and migrate it once between them; a
database from a build before migrations stops both with the reason."""

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from projections.db import create_schema, make_engine
from projections.migrate import head, revision_of
from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import create_job, start_stack, stopped_after, wait_ready
from tests.unit.test_migrations import differences, on

pytestmark = pytest.mark.kafka


async def test_services_started_together_migrate_a_new_database(
        kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest,
        endpoint: Endpoint) -> None:
    with stopped_after(start_stack(kafka_bootstrap, tmp_path), request) as running:
        await wait_ready(running)
        engine = make_engine(f"sqlite+aiosqlite:///{running.database_path}")
        try:
            assert await revision_of(engine) == head()
            assert await on(engine, differences) == []
        finally:
            await engine.dispose()
        async with running.client() as client:  # the projector writes the migrated tables
            slug = f"migrated-{uuid.uuid4().hex[:8]}"
            job = await create_job(client, slug, f"{endpoint.base_url}/echo")
            assert (await client.get(f"/v1/jobs/{job['id']}")).json()["slug"] == slug
        logs = running.logs()
        assert "Traceback" not in logs, logs


async def test_a_database_from_before_migrations_stops_the_services_with_the_reason(
        kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'jobledger.db'}")
    try:
        await create_schema(engine)  # tables as an older build made them: no alembic_version
    finally:
        await engine.dispose()
    with stopped_after(start_stack(kafka_bootstrap, tmp_path), request) as running:
        services = [running.stack["api"], running.stack["projector"]]
        deadline = time.monotonic() + 90
        while any(s.running for s in services) and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        for service in services:
            assert not service.running, f"{service.name} serves an unmigrated database"
            assert "jobledger migrate --rebuild" in service.tail(80), service.tail(80)
