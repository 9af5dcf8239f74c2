"""The projector passes over a record it cannot apply, records it, and goes on."""

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from events.types import RunTriggered
from projections.projector import Applied, load_offsets
from projections.queries import get_run, job_positions_of
from projections.tables import run_events
from services.deadletter import decode_dead_letter
from services.projector import app
from services.projector.app import Projector
from tests.unit.test_projections import HISTORY, TOPIC, engine_at, record

# Every test here runs on both stores (tests.stores).
pytestmark = pytest.mark.usefixtures("store")


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.sent.append((topic, value))


async def test_poisoned_records_are_passed_over_and_the_rest_applies(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "p.db")
    letters, notices = Letters(), list[dict[str, int]]()
    projector = Projector(engine, TOPIC, letters, "t.deadletter", on_projected=notices.append)
    # Offsets 0..6 are the history; 7 is not JSON; 8 triggers a run whose id another job
    # already used (the runs table refuses it); 9 is a good event of that second job.
    clash = record(1, "r1", RunTriggered(payload=None), offset=8, job_id="j2")
    after = record(2, "r9", RunTriggered(payload={"ok": 1}), offset=9, job_id="j2")
    batch = [*HISTORY, (0, 7, b"{not json"), clash, after]
    applied = await projector.project(batch)

    assert applied == len(HISTORY) + 1 and projector.poisoned == 2
    reasons = [decode_dead_letter(v) for _, v in letters.sent]
    assert [(r.source, r.offset) for r in reasons] == [("projector", 7), ("projector", 8)]
    assert "IntegrityError" in reasons[1].error
    # One notice for the whole fetched batch, the passed-over seq included.
    assert notices == [{"j": 7, "j2": 2}]
    assert await load_offsets(engine, TOPIC) == {0: 10}
    assert await job_positions_of(engine, ["j", "j2"]) == {"j": 7, "j2": 2}
    run = await get_run(engine, "p", "r9")
    assert run is not None and run.payload == {"ok": 1}
    first = await get_run(engine, "p", "r1")
    assert first is not None and first.job_id == "j" and first.status == "completed"
    async with engine.connect() as conn:
        rows = (await conn.execute(select(run_events.c.job_id, run_events.c.seq))).all()
    assert ("j2", 1) not in rows and ("j2", 2) in rows
    # Applying the same batch again changes nothing (the clash is now a known seq).
    assert await projector.project(batch) == 0
    assert len(notices) == 1  # nothing moved: nothing to announce
    assert await job_positions_of(engine, ["j", "j2"]) == {"j": 7, "j2": 2}


async def test_a_whole_good_batch_is_one_transaction(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path / "p.db")
    notices: list[dict[str, int]] = []
    projector = Projector(engine, TOPIC, Letters(), "t.deadletter", on_projected=notices.append)
    assert await projector.project(HISTORY) == len(HISTORY)
    assert projector.poisoned == 0 and notices == [{"j": 7}]
    run = await get_run(engine, "p", "r1")
    assert run is not None and run.status == "completed"


async def test_a_database_that_is_briefly_away_is_waited_for_not_blamed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = await engine_at(tmp_path / "p.db")
    letters = Letters()
    projector = Projector(engine, TOPIC, letters, "t.deadletter")
    outage = [True, True]  # the database is away for the first two tries
    real_apply = app.apply_batch_sync

    def flaky_apply(conn: Any, topic: str, records: list[Any]) -> Applied:
        if outage:
            raise OperationalError("INSERT ...", {}, Exception("database is locked"))
        return real_apply(conn, topic, records)

    async def answers(_: Any) -> bool:
        return not outage.pop(0) if outage else True

    monkeypatch.setattr(app, "apply_batch_sync", flaky_apply)
    monkeypatch.setattr(app, "database_answers", answers)
    monkeypatch.setattr(app, "RETRY_FIRST_SECS", 0.01)
    assert await projector.project(HISTORY) == len(HISTORY)
    assert letters.sent == [] and projector.poisoned == 0
