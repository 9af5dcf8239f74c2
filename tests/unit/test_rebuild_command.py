"""``jobledger projections rebuild`` without Kafka: a failed replay leaves the old
generation live and removes the new one; refusals exit 1 with a message."""

import asyncio
from pathlib import Path

import pytest

from projections.generations import Generation, SqliteGenerations
from services.cli.main import main
from services.config import Settings
from services.projector import rebuild as rebuild_module


async def test_a_failed_replay_keeps_the_old_generation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/jobledger.db"
    (tmp_path / "jobledger.db").write_text("live")
    made: list[Path] = []

    async def broken(settings: Settings, old: Generation, new: Generation,
                     out: object) -> None:
        path = tmp_path / new.name
        path.write_text("half")
        made.append(path)
        raise RuntimeError("the broker went away")

    monkeypatch.setattr(rebuild_module, "_replay", broken)
    with pytest.raises(RuntimeError, match="broker"):
        await rebuild_module.rebuild(Settings(database_url=url), out=lambda line: None)
    assert made and not made[0].exists()
    assert (await SqliteGenerations(url).live()).name == "jobledger.db"
    assert (tmp_path / "jobledger.db").read_text() == "live"
    assert not (tmp_path / "jobledger.db.current").exists()


def test_the_command_refuses_a_store_it_cannot_generate(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JOBLEDGER_DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    assert main(["projections", "rebuild"]) == 1
    err = capsys.readouterr().err
    assert "rebuild failed" in err and "in-memory" in err and "still serves" in err


async def test_the_command_refuses_a_second_rebuild(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/jobledger.db"
    monkeypatch.setenv("JOBLEDGER_DATABASE_URL", url)
    async with SqliteGenerations(url).lock():
        # In a thread: the command runs an event loop of its own.
        command = ["projections", "rebuild", "--home", str(tmp_path)]
        assert await asyncio.to_thread(main, command) == 1
    assert "another rebuild" in capsys.readouterr().err
