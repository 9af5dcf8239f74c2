"""What every adversarial test checks after its attack: the service still serves."""

import time
import uuid
from typing import Any

import httpx

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import (
    RunningStack,
    create_job,
    service_pids,
    wait_for_status,
)

LOOPS = ("processor", "executor", "projector", "api")


def slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pids(stack: RunningStack, names: tuple[str, ...] = LOOPS) -> dict[str, int]:
    return service_pids(stack, names)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error body every 4xx and 5xx must have; fails the test if it has another shape."""
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert all(set(d) == {"field", "reason"} for d in error["details"]), error
    return dict(error)


def fields(response: httpx.Response) -> list[str]:
    return [d["field"] for d in error_of(response)["details"]]


async def assert_still_serving(stack: RunningStack, endpoint: Endpoint,
                               before: dict[str, int]) -> None:
    """A normal job of another project runs to completion, and no loop was restarted."""
    started = time.monotonic()
    async with stack.client(stack.other_key) as client:
        job = await create_job(client, slug("canary"), f"{endpoint.base_url}/echo")
        response = await client.post(f"/v1/jobs/{job['id']}/trigger",
                                     json={"payload": {"canary": True}})
        assert response.status_code == 201, response.text
        done = await wait_for_status(client, response.json()["id"], {"completed"},
                                     timeout=30)
    assert done["result"]["echo"] == {"canary": True}
    assert pids(stack) == before, "a process was restarted"
    assert time.monotonic() - started < 30
