"""waiting_reason: the pure rule, and the projection's running counts it reads."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from msgspec.structs import replace
from sqlalchemy import select

from events.types import (
    JobCreated,
    RunCanceled,
    RunCancelRequested,
    RunCompleted,
    RunDispatched,
    RunTriggered,
)
from projections.queries import get_run
from projections.tables import job_gates, key_gates
from services.domain.holds import Holds, waiting_reason
from tests.unit.domain_support import spec
from tests.unit.test_projections import apply, engine_at, record

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_first_gate_that_holds_is_the_reason() -> None:
    full = Holds(max_concurrency=2, max_concurrency_per_key=1, job_running=2, key_running=1)
    assert waiting_reason("queued", "k", full, NOW) == "concurrency"
    key_full = Holds(max_concurrency=2, max_concurrency_per_key=1, job_running=1,
                     key_running=1)
    assert waiting_reason("queued", "k", key_full, NOW) == "concurrency_key"
    assert waiting_reason("queued", None, key_full, NOW) is None  # no key, no per-key limit
    assert waiting_reason("running", "k", full, NOW) is None
    assert waiting_reason("queued", "k", Holds(), NOW) is None
    # The job-wide start gates come first, while their hold lasts.
    later = NOW + timedelta(seconds=5)
    windowed = replace(full, held_reason="execution_window", held_until=later)
    assert waiting_reason("queued", "k", windowed, NOW) == "execution_window"
    assert waiting_reason("queued", "k", windowed, later) == "concurrency"
    limited = replace(key_full, held_reason="rate_limit", held_until=None)
    assert waiting_reason("queued", "k", limited, later) == "rate_limit"


@pytest.mark.usefixtures("store")  # on both stores (tests.stores)
async def test_held_runs_show_why_from_counts_kept_per_event(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "h.db")
    job = spec(max_concurrency=2, max_concurrency_per_key=1)
    dispatched = RunDispatched(attempt=1, endpoint_url="http://x")
    await apply(engine, [
        record(1, None, JobCreated(spec=job)),
        record(2, "a1", RunTriggered(concurrency_key="A")),
        record(3, "a1", dispatched),
        record(4, "a2", RunTriggered(concurrency_key="A")),
    ])
    a2 = await get_run(engine, "p", "a2")
    assert a2 is not None and a2.concurrency_key == "A"
    assert a2.waiting_reason == "concurrency_key"
    # In another batch: b1 starts, the job is full; a third run waits on the job.
    await apply(engine, [record(5, "b1", RunTriggered(concurrency_key="B")),
                         record(6, "b1", dispatched),
                         record(7, "c1", RunTriggered())])
    c1 = await get_run(engine, "p", "c1")
    assert c1 is not None and c1.waiting_reason == "concurrency"
    # a1 ends (cancel requested first: canceling still counts as running).
    await apply(engine, [record(8, "a1", RunCancelRequested()),
                         record(9, "a1", RunCanceled())])
    c1 = await get_run(engine, "p", "c1")
    assert c1 is not None and c1.waiting_reason is None
    await apply(engine, [record(10, "b1", RunCompleted(attempt=1))])
    async with engine.connect() as conn:
        assert list(await conn.execute(select(job_gates))) == []
        assert list(await conn.execute(select(key_gates))) == []
