"""Enqueue N Celery tasks in a tight loop and wait for the last of their results.

Runs in the bench-only environment; the bench driver (tests/bench/celery_bench.py) starts
Redis, the workers and one or more of these clients, and reads the JSON line each prints
last.

A warm-up batch is enqueued and awaited first (it also waits for the worker to be up);
then it prints ``warm`` and waits for a line on stdin before the measured batch.
The measured batch's time runs from the first ``apply_async`` to the moment the last
task's result is in the result backend (polled every 5 ms with MGET over the first 200
results not yet seen, so the polling costs Redis little).
"""

import argparse
import json
import sys
import time

from tests.bench.celery_app import app, post


def run_batch(count: int, start: int, timeout: float) -> dict[str, float]:
    backend = app.backend
    started = time.perf_counter()
    ids = [post.apply_async(({"i": start + i},)).id for i in range(count)]
    enqueued = time.perf_counter()
    keys = [backend.get_key_for_task(task_id) for task_id in ids]
    pending = keys
    results: dict[bytes, bytes] = {}
    deadline = started + timeout
    while pending:
        # Tasks finish about in order: the first pending ones say when to look further.
        head, rest = pending[:200], pending[200:]
        values = backend.client.mget(head)
        left = [k for k, v in zip(head, values, strict=True) if v is None]
        results.update((k, v) for k, v in zip(head, values, strict=True) if v is not None)
        pending = left + rest
        if len(left) == len(head):
            if time.perf_counter() > deadline:
                raise SystemExit(f"celery: {len(pending)} of {count} tasks unfinished "
                                 f"after {timeout} s")
            time.sleep(0.005)
    finished = time.perf_counter()
    failed = 0
    for value in results.values():
        meta = json.loads(value)
        if meta.get("status") != "SUCCESS" or meta.get("result") != 200:
            failed += 1
    # perf_counter is CLOCK_MONOTONIC: comparable between the driver's client processes.
    return {"tasks": count, "started": started, "finished": finished,
            "enqueue_seconds": enqueued - started, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--first", type=int, default=0, help="payload index of the first task")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if args.warmup:
        run_batch(args.warmup, args.first, 120)
    # Tell the driver the warm-up is over and wait for it to take its /proc readings.
    print("warm", flush=True)
    sys.stdin.readline()
    print(json.dumps(run_batch(args.tasks, args.first + args.warmup, args.timeout)), flush=True)


if __name__ == "__main__":
    main()
    sys.exit(0)
