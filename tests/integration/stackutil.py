"""Start a whole jobledger stack (the four processes, as ``make run`` starts them) on the
session's broker, with its own topic prefix and database, and talk to it over HTTP."""

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.kafka.node import free_port
from services.cli.stack import Stack
from services.config import hash_key


@dataclass
class RunningStack:
    stack: Stack
    base_url: str
    admin_key: str
    other_key: str
    viewer_key: str
    database_path: Path
    prefix: str
    bootstrap: str

    def client(self, key: str | None = None, timeout: float = 30.0) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{svc.tail(60)}"
                         for name, svc in self.stack.services.items())


def start_stack(bootstrap: str, home: Path, partitions: int = 4,
                database_url: str | None = None) -> RunningStack:
    """The stack on its own SQLite file in ``home``, or on ``database_url``."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    admin, other, viewer = (f"key-{uuid.uuid4().hex}" for _ in range(3))
    port = free_port()
    database = home / "jobledger.db"
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "JOBLEDGER_TOPIC_PREFIX": prefix,
        "JOBLEDGER_PARTITIONS": str(partitions),
        "JOBLEDGER_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{database}",
        "JOBLEDGER_PROCESSOR_DIR": str(home / "processor"),
        "JOBLEDGER_RUN_TOKEN_SECRET_FILE": str(home / "run_token.key"),
        "JOBLEDGER_HTTP_PORT": str(port),
        "JOBLEDGER_BOOTSTRAP_KEY": admin,
        "JOBLEDGER_API_KEYS": f"other:admin:{hash_key(other)},default:viewer:{hash_key(viewer)}",
        # The tests' endpoints are on loopback: allow it explicitly, as an operator would.
        "JOBLEDGER_ALLOWED_NETWORKS": "127.0.0.0/8",
        "JOBLEDGER_LOG_LEVEL": "INFO",
    })
    stack = Stack(env, home / "logs")
    stack.start()
    return RunningStack(stack, f"http://127.0.0.1:{port}", admin, other, viewer, database,
                        prefix, bootstrap)


@contextlib.contextmanager
def stopped_after(running: RunningStack, request: pytest.FixtureRequest,
                  ) -> Iterator[RunningStack]:
    """Yield the stack, stop it afterwards, and print its logs if a test failed."""
    try:
        yield running
    finally:
        running.stack.stop()
        if request.session.testsfailed:
            print(running.logs())


def service_pids(running: RunningStack, names: tuple[str, ...]) -> dict[str, int]:
    """The pid of each named service, failing the test if one is not running."""
    found = {}
    for name in names:
        proc = running.stack[name].proc
        assert proc is not None and running.stack[name].running, f"{name} is not running"
        found[name] = proc.pid
    return found


async def wait_ready(running: RunningStack, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with running.client() as client:
        while time.monotonic() < deadline:
            for name, service in running.stack.services.items():
                if not service.running:
                    raise AssertionError(f"{name} exited at start:\n{service.tail()}")
            try:
                response = await client.get("/readyz")
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise AssertionError(f"stack not ready within {timeout}s\n{running.logs()}")


async def create_job(client: httpx.AsyncClient, slug: str, endpoint_url: str,
                     **fields: Any) -> dict[str, Any]:
    body = {"name": slug, "slug": slug, "endpoint_url": endpoint_url, **fields}
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def wait_for_status(client: httpx.AsyncClient, run_id: str, statuses: Iterable[str],
                          timeout: float = 60.0) -> dict[str, Any]:
    wanted = set(statuses)
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/runs/{run_id}")
        if response.status_code == 200:
            run = response.json()
            if run["status"] in wanted:
                return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} not in {wanted} within {timeout}s; last: {run}")
