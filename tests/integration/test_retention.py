"""Retention on real Kafka: a project's setting round-trips through the log, its runs get
purge_at as they end, and the projector's sweep (its clock moved two days ahead through
JOBLEDGER_PURGE_CLOCK_SKEW_SECS, the stack's test seam) purges the ended runs of a
project that keeps them one day: every run route answers 404 RUN_PURGED, the list leaves
them out, and runs still waiting, or of a project that keeps them 30 days, stay."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import (
    RunningStack,
    create_job,
    start_stack,
    stopped_after,
    wait_for_status,
    wait_ready,
)

pytestmark = pytest.mark.kafka

SKEW = timedelta(days=2)


@pytest.fixture(scope="module")
def skewed_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
                 request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    """A stack of its own whose projector sweeps every half second, two days ahead."""
    home: Path = tmp_path_factory.mktemp("retention")
    with pytest.MonkeyPatch.context() as patch:  # start_stack passes os.environ on
        patch.setenv("JOBLEDGER_PURGE_CLOCK_SKEW_SECS", str(SKEW.total_seconds()))
        patch.setenv("JOBLEDGER_PURGE_EVERY_SECS", "0.5")
        running = start_stack(kafka_bootstrap, home, partitions=2)
    with stopped_after(running, request) as stack:
        yield stack


async def wait_purged(client: httpx.AsyncClient, run_id: str,
                      timeout: float = 60.0) -> dict[str, Any]:
    """The run's 404 once the sweep took it (after it ended: the sweep takes no other)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/runs/{run_id}")
        last = response.json()
        if response.status_code == 404:
            return dict(last)
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} not purged within {timeout}s; last: {last}")


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_retention_purges_the_due_runs_and_nothing_else(skewed_stack: RunningStack,
                                                              endpoint: Endpoint) -> None:
    await wait_ready(skewed_stack)
    async with skewed_stack.client() as client, \
            skewed_stack.client(skewed_stack.other_key) as other, \
            skewed_stack.client(skewed_stack.viewer_key) as viewer:
        # The setting: admin only, within bounds, and it reads back.
        assert (await client.get("/v1/retention")).json() == {
            "run_retention_days": 30, "default": True, "since": None}
        assert (await viewer.put("/v1/retention", json={"run_retention_days": 1})
                ).status_code == 403
        bad = await client.put("/v1/retention", json={"run_retention_days": 0})
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["details"][0]["field"] == "run_retention_days"
        shown = await client.put("/v1/retention", json={"run_retention_days": 1})
        assert shown.status_code == 200, shown.text
        assert shown.json()["run_retention_days"] == 1 and shown.json()["default"] is False
        assert (await client.get("/v1/retention")).json() == shown.json()
        assert (await viewer.get("/v1/retention")).json() == shown.json()
        assert (await other.get("/v1/retention")).json()["default"] is True

        tag = uuid.uuid4().hex[:8]
        job = await create_job(client, f"keep1-{tag}", f"{endpoint.base_url}/echo")
        kept = await create_job(other, f"keep30-{tag}", f"{endpoint.base_url}/echo")
        ended = [(await client.post(f"/v1/jobs/{job['id']}/trigger",
                                    json={"tags": {"suite": tag}})).json()["id"]
                 for _ in range(3)]
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        waiting = await client.post(f"/v1/jobs/{job['id']}/trigger",
                                    json={"scheduled_at": later, "tags": {"suite": tag}})
        assert waiting.status_code == 201, waiting.text
        elsewhere = (await other.post(f"/v1/jobs/{kept['id']}/trigger", json={})).json()["id"]

        # Project "default" keeps runs a day; the sweep's clock is two days ahead.
        for run_id in ended:
            body = await wait_purged(client, run_id)
            assert body["error"]["code"] == "RUN_PURGED", body
            assert "purged" in body["error"]["message"]
            assert body["error"]["details"] == [{"field": "run_id", "reason": "purged"}]
        # Every route of the run answers the same.
        for path in ("events", "messages", "children", "lineage"):
            response = await client.get(f"/v1/runs/{ended[0]}/{path}")
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "RUN_PURGED", path
        cancel = await client.post(f"/v1/runs/{ended[0]}/cancel", json={})
        assert cancel.status_code == 404 and cancel.json()["error"]["code"] == "RUN_PURGED"
        # Another project's key does not learn the run existed.
        foreign = await other.get(f"/v1/runs/{ended[0]}")
        assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"

        # The waiting run stays (it has not ended: no purge_at) and alone is listed.
        still = await client.get(f"/v1/runs/{waiting.json()['id']}")
        assert still.status_code == 200 and still.json()["purge_at"] is None
        listed = await client.get("/v1/runs", params={"tag": f"suite:{tag}"})
        assert [r["id"] for r in listed.json()["data"]] == [waiting.json()["id"]]

        # Project "other" keeps its runs 30 days: ended, and still there.
        run = await wait_for_status(other, elsewhere, {"completed"})
        assert moment(run["purge_at"]) == moment(run["finished_at"]) + timedelta(days=30)
        await asyncio.sleep(1.5)  # three more sweeps
        assert (await other.get(f"/v1/runs/{elsewhere}")).status_code == 200
