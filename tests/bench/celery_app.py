"""The Celery side of the benchmark: one task that does a jobledger run's HTTP work.

Runs only in the bench-only environment (``.venv-bench``, from
deploy/bench-requirements.txt): it must not import anything of jobledger's.

The task POSTs its JSON payload to the loopback no-op endpoint with one HTTP session per
worker thread (connection reuse, as jobledger's executor has one session), and is
acknowledged after the call (``task_acks_late``), as a run completes only once the
endpoint answered. Its result (the HTTP status) goes to the Redis result backend, which is
where the bench sees it finish.

    BENCH_REDIS_URL=redis://127.0.0.1:PORT/0 BENCH_ENDPOINT_URL=http://127.0.0.1:P/noop \
        celery -A tests.bench.celery_app worker ...
"""

import json
import os
import threading

import requests
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ENDPOINT_URL = os.environ.get("BENCH_ENDPOINT_URL", "http://127.0.0.1:9000/noop")

app = Celery("jobledger_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_acks_late=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=3600,
    # Green pools run many tasks at once in one process: give them enough connections.
    broker_pool_limit=int(os.environ.get("BENCH_POOL_LIMIT", "10")),
    redis_max_connections=int(os.environ.get("BENCH_POOL_LIMIT", "10")) or None,
)

_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


@app.task(name="bench.post")
def post(payload: object) -> int:
    response = _session().post(ENDPOINT_URL, data=json.dumps(payload),
                               headers={"Content-Type": "application/json"}, timeout=30)
    response.raise_for_status()
    return response.status_code
