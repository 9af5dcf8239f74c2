"""The jobledger side of the benchmark: the phases run against one running stack.

- ``single``: N runs, each triggered by its own request, C concurrent clients;
- ``bulk``: N runs through POST /v1/jobs/{id}/trigger/bulk (None when the route is absent);
- ``visibility``: open-loop single triggers at a fixed rate, each from send until the run
  is visible in the projection (``Prefer: respond-async`` when the API honours it);
- ``backlog``: trigger cost on an empty job vs the same job with a large queue.

Completion and visibility are read straight from the projection's SQLite file (read-only),
as the API's own read-your-writes wait does, so no extra API load is added.
"""

import asyncio
import math
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from services.kafka import topic_partitions
from tests.bench.procs import Usage, cpu_between, usages
from tests.integration.stackutil import RunningStack, create_job

ASYNC = {"Prefer": "respond-async"}
OK = (201, 202)


class BenchError(RuntimeError):
    pass


@dataclass
class Throughput:
    label: str
    runs: int
    seconds: float
    records_per_run: float
    latencies: list[float]            # seconds, sorted: each request's response time
    cpu: dict[str, float]             # cpu seconds of each process tree in the phase
    usage_after: dict[str, Usage]
    note: str = ""

    @property
    def rate(self) -> float:
        return self.runs / self.seconds


@dataclass
class Visibility:
    runs: int
    rate: float                      # triggers/s offered
    visible: list[float]             # seconds from send to visible in the projection, sorted
    responses: list[float]           # seconds from send to the HTTP answer, sorted
    mode: str                        # "respond-async" or "201"


@dataclass
class Probe:
    triggers: int
    latencies: list[float]
    cpu: dict[str, float]
    failed: int = 0

    def per_trigger_ms(self, name: str) -> float:
        return self.cpu.get(name, 0.0) / self.triggers * 1000


@dataclass
class Backlog:
    target: int
    accepted: int
    failed: int
    fill_seconds: float
    fill_method: str
    queued: int                      # runs queued in the projection after the fill
    rss_before: int
    rss_after: int
    empty: Probe
    full: Probe
    errors: Counter[str] = field(default_factory=Counter)
    stopped: str = ""                # why the fill stopped short, if it did


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


class Projection:
    """Read-only questions to the projection's SQLite database."""

    def __init__(self, stack: RunningStack) -> None:
        self.path = stack.database_path

    def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10) as db:
            return db.execute(sql, params).fetchall()

    def count(self, job_id: str, status: str | None = None) -> int:
        if status is None:
            rows = self._query("SELECT count(*) FROM runs WHERE job_id = ?", job_id)
        else:
            rows = self._query("SELECT count(*) FROM runs WHERE job_id = ? AND status = ?",
                               job_id, status)
        return int(rows[0][0])

    def new_runs(self, job_id: str, after_rowid: int) -> list[tuple[int, str]]:
        return [(int(r), str(i)) for r, i in self._query(
            "SELECT rowid, id FROM runs WHERE rowid > ? AND job_id = ?", after_rowid, job_id)]

    async def wait_count(self, job_id: str, target: int, status: str | None = None,
                         stall: float = 60.0, interval: float = 0.02) -> None:
        """Until ``target`` runs (of ``status``) are in the projection; raise if the count
        stops moving for ``stall`` seconds."""
        last, moved = -1, time.monotonic()
        while True:
            now = self.count(job_id, status)
            if now >= target:
                return
            if now != last:
                last, moved = now, time.monotonic()
            elif time.monotonic() - moved > stall:
                raise BenchError(f"job {job_id}: {now} of {target} runs {status or 'visible'} "
                                 f"and no progress for {stall:.0f} s")
            await asyncio.sleep(interval)


BULK_OK = (200, 201, 202, 207)


def bulk_item_errors(body: Any) -> list[Any]:
    """The per-item results of a bulk answer that are errors (an ``error`` member, or a
    ``status`` that is an HTTP error code)."""
    items = None
    if isinstance(body, dict):
        items = next((body[k] for k in ("items", "results", "runs")
                      if isinstance(body.get(k), list)), None)
    errors = []
    for item in items or ():
        if isinstance(item, dict) and (
                item.get("error") or item.get("status") == "rejected"
                or (isinstance(item.get("status"), int) and item["status"] >= 400)):
            errors.append(item)
    return errors


def run_id_of(body: Any, headers: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("id", "run_id"):
            if isinstance(body.get(key), str) and body[key].startswith("run_"):
                return str(body[key])
        location = body.get("location")
    else:
        location = None
    location = location or headers.get("Location")
    if isinstance(location, str) and "/v1/runs/" in location:
        return location.rstrip("/").rsplit("/", 1)[-1]
    return None


class Bench:
    def __init__(self, stack: RunningStack, endpoint: str, roots: dict[str, int],
                 clients: int) -> None:
        self.stack = stack
        self.endpoint = endpoint
        self.roots = roots
        self.projection = Projection(stack)
        self.session = aiohttp.ClientSession(
            base_url=stack.base_url,
            headers={"Authorization": f"Bearer {stack.admin_key}"},
            # Drop idle connections before uvicorn does (its keep-alive is 5 s): a POST on
            # a connection the server just closed fails with "Server disconnected".
            connector=aiohttp.TCPConnector(limit=max(64, clients * 2), keepalive_timeout=2),
            timeout=aiohttp.ClientTimeout(total=120))
        self.bulk_supported: bool | None = None
        self.async_supported: bool | None = None

    async def close(self) -> None:
        await self.session.close()

    async def post(self, path: str, body: Any,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        async with self.session.post(path, json=body, headers=headers) as response:
            try:
                data = await response.json(content_type=None)
            except ValueError:
                data = await response.text()
            return response.status, data, response.headers

    async def new_job(self, name: str, path: str = "/noop", **fields: Any) -> str:
        async with self.stack.client(timeout=60) as client:
            job = await create_job(client, f"{name}-{uuid.uuid4().hex[:6]}",
                                   f"{self.endpoint}{path}", **fields)
        return str(job["id"])

    async def records_written(self) -> int:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(bootstrap_servers=self.stack.bootstrap)
        await consumer.start()
        try:
            topics = [t for t in await consumer.topics() if t.startswith(self.stack.prefix)]
            tps = await topic_partitions(self.stack.bootstrap, *topics)
            return sum((await consumer.end_offsets(tps)).values())
        finally:
            await consumer.stop()

    async def trigger(self, job_id: str, i: int,
                      headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        return await self.post(f"/v1/jobs/{job_id}/trigger", {"payload": {"i": i}}, headers)

    async def bulk(self, job_id: str, start: int, count: int,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        items = [{"payload": {"i": start + k}} for k in range(count)]
        return await self.post(f"/v1/jobs/{job_id}/trigger/bulk", {"items": items}, headers)

    async def _measured(self, label: str, job_id: str, runs: int, done_before: int,
                        send: Callable[[], Awaitable[list[float]]], note: str) -> Throughput:
        records_before = await self.records_written()
        before = usages(self.roots)
        started = time.perf_counter()
        latencies = await send()
        await self.projection.wait_count(job_id, done_before + runs, "completed")
        elapsed = time.perf_counter() - started
        after = usages(self.roots)
        records = await self.records_written() - records_before
        return Throughput(label, runs, elapsed, records / runs, sorted(latencies),
                          cpu_between(before, after), after, note)

    async def _singles(self, job_id: str, start: int, count: int, clients: int,
                       headers: dict[str, str] | None = None) -> list[float]:
        limit = asyncio.Semaphore(clients)
        latencies: list[float] = []

        async def one(i: int) -> None:
            async with limit:
                sent = time.perf_counter()
                status, body, _ = await self.trigger(job_id, i, headers)
                latencies.append(time.perf_counter() - sent)
                if status not in OK:
                    raise BenchError(f"trigger answered {status}: {body}")

        await asyncio.gather(*(one(start + i) for i in range(count)))
        return latencies

    async def single(self, runs: int, clients: int, warmup: int) -> Throughput:
        job_id = await self.new_job("bench-single")
        await self._singles(job_id, 0, warmup, clients)
        await self.projection.wait_count(job_id, warmup, "completed")
        return await self._measured(
            "single", job_id, runs, warmup,
            lambda: self._singles(job_id, warmup, runs, clients),
            f"{runs} runs, {clients} concurrent clients, one run per request")

    async def bulk_phase(self, runs: int, batch: int, clients: int,
                         warmup: int) -> Throughput | None:
        job_id = await self.new_job("bench-bulk")
        status, body, _ = await self.bulk(job_id, 0, max(1, min(warmup, batch)))
        if status in (404, 405):
            self.bulk_supported = False
            return None
        if status not in BULK_OK or bulk_item_errors(body):
            raise BenchError(f"bulk trigger answered {status}: {body}")
        self.bulk_supported = True
        await self.projection.wait_count(job_id, max(1, min(warmup, batch)), "completed")
        done_before = max(1, min(warmup, batch))

        async def send() -> list[float]:
            limit = asyncio.Semaphore(clients)
            latencies: list[float] = []

            async def one(start: int, count: int) -> None:
                async with limit:
                    sent = time.perf_counter()
                    status, body, _ = await self.bulk(job_id, start, count)
                    latencies.append(time.perf_counter() - sent)
                    if status not in BULK_OK:
                        raise BenchError(f"bulk trigger answered {status}: {body}")
                    if errors := bulk_item_errors(body):
                        raise BenchError(f"bulk trigger: {len(errors)} of {count} items "
                                         f"failed, the first: {errors[0]}")

            await asyncio.gather(*(one(done_before + s, min(batch, runs - s))
                                   for s in range(0, runs, batch)))
            return latencies

        return await self._measured(
            "bulk", job_id, runs, done_before, send,
            f"{runs} runs, {batch} per request, {clients} concurrent requests")

    async def visibility(self, runs: int, rate: float) -> Visibility:
        """Open loop: trigger i is sent at i / rate seconds, whatever came back before."""
        job_id = await self.new_job("bench-visible")
        seen: dict[str, float] = {}
        pending: dict[str, float] = {}    # 202s: run id -> sent
        visible: list[float] = []
        responses: list[float] = []
        applied: list[bool] = []
        finished = asyncio.Event()

        async def watch() -> None:
            rowid = 0
            while not finished.is_set() or any(r not in seen for r in pending):
                rows = self.projection.new_runs(job_id, rowid)
                now = time.perf_counter()
                for _, run_id in rows:
                    seen.setdefault(run_id, now)
                rowid = max((r for r, _ in rows), default=rowid)
                await asyncio.sleep(0.005)

        async def one(i: int, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            sent = time.perf_counter()
            status, body, headers = await self.trigger(job_id, i, ASYNC)
            answered = time.perf_counter()
            responses.append(answered - sent)
            if status == 201:
                visible.append(answered - sent)
            elif status == 202:
                applied.append("respond-async" in headers.get("Preference-Applied", ""))
                run_id = run_id_of(body, headers)
                if run_id is None:
                    raise BenchError(f"202 without a run id: {body} {dict(headers)}")
                pending[run_id] = sent
            else:
                raise BenchError(f"trigger answered {status}: {body}")

        watcher = asyncio.create_task(watch())
        try:
            t0 = time.perf_counter() + 0.1
            await asyncio.gather(*(one(i, t0 + i / rate) for i in range(runs)))
            finished.set()
            await asyncio.wait_for(watcher, timeout=120)
        finally:
            watcher.cancel()
        visible.extend(seen[run_id] - sent for run_id, sent in pending.items())
        self.async_supported = any(applied)
        mode = "respond-async" if self.async_supported else "201"
        return Visibility(runs, rate, sorted(visible), sorted(responses), mode)

    async def probe(self, job_id: str, count: int, start: int) -> Probe:
        """``count`` triggers one after another (201: visible); their latency and CPU.
        A failed trigger is counted, not raised: a huge queue may make the API refuse."""
        before = usages(self.roots)
        latencies: list[float] = []
        failed = 0
        for i in range(count):
            sent = time.perf_counter()
            status, _, _ = await self.trigger(job_id, start + i)
            latencies.append(time.perf_counter() - sent)
            failed += status not in OK
        after = usages(self.roots)
        return Probe(count, sorted(latencies), cpu_between(before, after), failed)

    async def fill(self, job_id: str, target: int, start: int, clients: int, batch: int,
                   timeout: float) -> tuple[int, int, Counter[str], str, str]:
        """Queue ``target`` runs as fast as the API allows; stop early when requests keep
        failing (a queue too large for the service, say) or after ``timeout`` s.
        Returns accepted, failed, errors, method, why stopped."""
        if self.bulk_supported:
            headers = ASYNC if self.async_supported else None
            method, per_request, workers = (
                f"bulk, {batch} per request, 2 concurrent"
                + (", Prefer: respond-async" if headers else ""), batch, 2)
        elif self.async_supported:
            method, per_request, workers, headers = (
                f"single triggers, Prefer: respond-async, {clients} clients", 1, clients, ASYNC)
        else:
            method, per_request, workers, headers = (
                f"single triggers, {clients} clients (no bulk route, no respond-async)",
                1, clients, None)
        accepted = failed = failed_in_a_row = 0
        errors: Counter[str] = Counter()
        next_index = 0
        deadline = time.monotonic() + timeout
        stopped = ""

        async def worker() -> None:
            nonlocal accepted, failed, failed_in_a_row, next_index, stopped
            while next_index < target and not stopped:
                if time.monotonic() > deadline:
                    stopped = f"fill timeout ({timeout:.0f} s)"
                    return
                count = min(per_request, target - next_index)
                first, next_index = next_index, next_index + count
                try:
                    if per_request > 1:
                        status, body, _ = await self.bulk(job_id, start + first, count,
                                                          headers)
                    else:
                        status, body, _ = await self.trigger(job_id, start + first, headers)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, body = 0, repr(exc)
                bad = len(bulk_item_errors(body)) if per_request > 1 else 0
                failed_in_a_row = 0 if status in BULK_OK and bad < count else failed_in_a_row + 1
                if status in BULK_OK and not bad:
                    accepted += count
                elif status in BULK_OK:
                    accepted += count - bad
                    failed += bad
                    errors["bulk item errors"] += bad
                else:
                    failed += count
                    code = (body.get("error", {}).get("code") if isinstance(body, dict)
                            else str(body)[:80])
                    errors[f"{status} {code}"] += count
                if failed_in_a_row >= (5 if per_request > 1 else 100):
                    stopped = f"{failed_in_a_row} requests in a row failed"

        await asyncio.gather(*(worker() for _ in range(workers)))
        return accepted, failed, errors, method, stopped

    async def backlog(self, target: int, probes: int, clients: int, batch: int,
                      timeout: float) -> Backlog:
        job_id = await self.new_job("bench-backlog", "/hang", max_concurrency=1,
                                    timeout_secs=3600, max_attempts=1)
        empty = await self.probe(job_id, probes, 0)
        rss_before = usages({"processor": self.roots["processor"]})["processor"].rss
        started = time.perf_counter()
        accepted, failed, errors, method, stopped = await self.fill(
            job_id, target, probes, clients, batch, timeout)
        # Accepted is not necessarily visible yet (202s): the fill ends when it is.
        await self.projection.wait_count(job_id, probes + accepted, stall=120)
        fill_seconds = time.perf_counter() - started
        queued = self.projection.count(job_id, "queued")
        rss_after = usages({"processor": self.roots["processor"]})["processor"].rss
        full = await self.probe(job_id, probes, probes + target)
        return Backlog(target, accepted, failed, fill_seconds, method, queued, rss_before,
                       rss_after, empty, full, errors, stopped)
