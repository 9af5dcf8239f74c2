"""GET /v1/metrics through the API, on real Kafka: a scripted set of runs (completions, a
delayed one, failures, a cancel) and the counts, success rate, buckets and percentiles
the answer gives, against values worked out from the runs themselves. (The rollups'
arithmetic is covered against hand-counted values in tests/unit/test_metrics.py.)"""

import math
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.integration.endpoint import Endpoint
from tests.integration.stackutil import RunningStack, create_job, wait_for_status

pytestmark = pytest.mark.kafka

ENDED = ("completed", "failed", "timed_out", "crashed", "canceled", "expired")


def instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def at(text: str) -> datetime:
    moment = instant(text)
    assert moment is not None
    return moment


def secs(later: str, earlier: str) -> float:
    return (at(later) - at(earlier)).total_seconds()


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def within(got: float | None, exact: float, error: float) -> bool:
    # A percentile is within the relative error, or read as 0 under a millisecond.
    return got is not None and (abs(got - exact) <= error * exact * (1 + 1e-9)
                                or (exact < 0.001 and got == 0))


async def trigger(client: httpx.AsyncClient, job: str, body: dict[str, Any] | None = None,
                  ) -> str:
    response = await client.post(f"/v1/jobs/{job}/trigger", json=body or {})
    assert response.status_code in (201, 202), response.text
    return str(response.json()["id"])


async def metrics(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/v1/metrics", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_metrics_of_a_scripted_set_of_runs(ready_stack: RunningStack,
                                                 endpoint: Endpoint) -> None:
    async with ready_stack.client() as client:
        tag = uuid.uuid4().hex[:8]
        ok = await create_job(client, f"ok-{tag}", f"{endpoint.base_url}/slow/200",
                              max_attempts=1)
        bad = await create_job(client, f"bad-{tag}", f"{endpoint.base_url}/fail/500",
                               max_attempts=1)
        # In this order: three completions, one delayed 2 s then completed, two failures,
        # and one delayed run canceled before it started.
        runs = [await trigger(client, ok["id"]) for _ in range(3)]
        runs.append(await trigger(client, ok["id"], {"delay_secs": 2}))
        runs += [await trigger(client, bad["id"]) for _ in range(2)]
        held = await trigger(client, bad["id"], {"delay_secs": 600})
        canceled = await client.post(f"/v1/runs/{held}/cancel", json={})
        assert canceled.status_code in (200, 202), canceled.text
        done = [await wait_for_status(client, run_id, {"completed", "failed"})
                for run_id in runs]
        done.append(await wait_for_status(client, held, {"canceled"}))
        assert [r["status"] for r in done] == ["completed"] * 4 + ["failed"] * 2 + [
            "canceled"]

        found = await metrics(client, window="1h", bucket="1m")
        error = found["relative_error"]
        assert error == 0.05 and found["job_id"] is None
        # This module's stack is this test's own: the project's runs are these.
        assert found["started"] == 6
        assert found["ended"] == {**dict.fromkeys(ENDED, 0), "completed": 4, "failed": 2,
                                  "canceled": 1}
        assert found["success_rate"] == 4 / 6
        # Each run ended in the minute its finished_at says; each started in its
        # started_at's (the canceled one never started).
        by_minute: dict[str, dict[str, int]] = {}
        for run in done:
            for column, what in (("finished_at", run["status"]), ("started_at", "started")):
                moment = instant(run[column])
                if moment is not None:
                    minute = moment.replace(second=0, microsecond=0).isoformat()
                    counts = by_minute.setdefault(minute, {})
                    counts[what] = counts.get(what, 0) + 1
        got = {at(b["start"]).isoformat(): {
            **{s: n for s, n in b["ended"].items() if n},
            **({"started": b["started"]} if b["started"] else {})}
            for b in found["buckets"] if b["started"] or any(b["ended"].values())}
        assert got == by_minute
        for bucket in found["buckets"]:
            assert bucket["throughput_per_sec"] == sum(bucket["ended"].values()) / 60
        assert len(found["buckets"]) == 61  # an hour of minutes, rounded out

        # Durations (completed: start to end) and queue waits (eligible to first
        # dispatch), from the runs' own times.
        durations = [secs(r["finished_at"], r["started_at"]) for r in done
                     if r["status"] == "completed"]
        waits = [min(secs(r["started_at"], r["created_at"]),
                     secs(r["started_at"], r["scheduled_at"] or r["created_at"]))
                 for r in done if r["started_at"] is not None]
        assert min(durations) >= 0.2  # the endpoint takes 200 ms
        for name, share in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            exact = nearest_rank(durations, share)
            assert within(found["duration_secs"][name], exact, error), (name, durations, found)
            exact = nearest_rank([max(0.0, w) for w in waits], share)
            assert within(found["queue_wait_secs"][name], exact, error), (name, waits, found)

        # One job, in hour buckets, by slug.
        mine = await metrics(client, job=ok["slug"], window="2h", bucket="1h")
        assert mine["job_id"] == ok["id"] and mine["started"] == 4
        assert mine["ended"]["completed"] == 4 and mine["success_rate"] == 1.0
        assert sum(b["ended"]["completed"] for b in mine["buckets"]) == 4
        theirs = await metrics(client, job=bad["id"], window="1d", bucket="1d")
        assert theirs["success_rate"] == 0.0 and theirs["ended"]["canceled"] == 1


async def test_bad_metrics_parameters_get_one_error_shape(
        ready_stack: RunningStack) -> None:
    async with ready_stack.client() as client:
        for params, field in (({"window": "1y"}, "window"),
                              ({"bucket": "5s"}, "bucket"),
                              ({"window": "1h", "bucket": "2h"}, "bucket"),
                              ({"window": "7d", "bucket": "1m"}, "bucket"),
                              ({"window": "30d", "bucket": "30m"}, "bucket")):
            response = await client.get("/v1/metrics", params=params)
            assert response.status_code == 422, (params, response.text)
            error = response.json()["error"]
            assert [d["field"] for d in error["details"]] == [field], (params, error)
        missing = await client.get("/v1/metrics", params={"job": "no-such-job"})
        assert missing.status_code == 404 and "no-such-job" in missing.text
        async with httpx.AsyncClient(base_url=str(client.base_url)) as anonymous:
            assert (await anonymous.get("/v1/metrics")).status_code == 401
        # A window past 90 days counts as 90 days, as a job's health's does.
        assert (await metrics(client, window="400d", bucket="1d"))["window"] == "90d"
