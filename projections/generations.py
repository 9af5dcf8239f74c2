"""Generations of the read-model store: rebuild into a fresh place, then switch.

The configured database URL names a *place*; the read models live in one generation of
it at a time. A small pointer says which generation is live. ``jobledger projections
rebuild`` fills a new generation from the log while the live one keeps serving, then
moves the pointer; the projector and the API look at the pointer about once a second
(``LiveStore``) and reopen their engines on the new generation.

SQLite: generation 1 is the configured file itself (``jobledger.db``), later ones are
siblings (``jobledger.g2.db``, ``jobledger.g3.db`` ...). The pointer is a sibling text
file, ``jobledger.db.current``, holding the live file's name; it is replaced atomically
(write a temporary file, fsync, rename), so a reader sees the old name or the new one,
never half of one. No pointer file means generation 1.

PostgreSQL (projections.pg_generations): a schema per generation. Generation 1 is the
schema the configured URL's connections use (``public`` unless the URL's
``?search_path=`` or the role says otherwise), later ones ``jobledger_g2``,
``jobledger_g3`` ... The pointer is a one-row table in that base schema
(``jobledger_generation``), updated in one transaction; a generation's URL carries
``?search_path=<its schema>`` (projections.db), so its tables, views and Alembic's version
table are all made and read there. Reading the pointer is a query: hence the protocol's
methods are coroutines (SQLite's stay cheap file operations).

Other stores (an in-memory SQLite database, a driver other than asyncpg) have one fixed
generation: the services run as before and ``rebuild`` refuses with a message
(``Unsupported``).
"""

import contextlib
import fcntl
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple, Protocol

from sqlalchemy.engine import make_url

# Files SQLite keeps beside a database in WAL mode (and the rollback journal).
_SIDE_FILES = ("", "-wal", "-shm", "-journal")


class Unsupported(Exception):
    """This store cannot hold more than one generation (yet)."""


class Generation(NamedTuple):
    name: str  # what the pointer holds (for SQLite, the file name)
    url: str  # the database URL of this generation


class Generations(Protocol):
    async def live(self) -> Generation:
        """The generation serving now (cheap: the services call it about once a second)."""
        ...

    async def prepare(self) -> Generation:
        """A new, empty place for the next generation (leftovers of an interrupted
        rebuild are removed first). Call under ``lock``."""
        ...

    async def switch(self, to: Generation) -> None:
        """Make ``to`` the live generation, atomically."""
        ...

    async def remove(self, generation: Generation) -> None:
        """Delete a generation that is not live."""
        ...

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held by a rebuild: one at a time per store. Raises Unsupported if taken."""
        ...

    async def close(self) -> None:
        """Release what reading the pointer holds (PostgreSQL: its connection)."""
        ...


class FixedStore:
    """One generation only: a store this module cannot generate (an in-memory SQLite
    database, PostgreSQL on a driver other than asyncpg). The services use it unchanged;
    rebuilds refuse."""

    def __init__(self, url: str, why: str) -> None:
        self._live, self._why = Generation("fixed", url), why

    async def live(self) -> Generation:
        return self._live

    async def prepare(self) -> Generation:
        raise Unsupported(self._why)

    async def switch(self, to: Generation) -> None:
        raise Unsupported(self._why)

    async def remove(self, generation: Generation) -> None:
        raise Unsupported(self._why)

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        raise Unsupported(self._why)

    async def close(self) -> None:
        pass


def generation_file(base: Path, number: int) -> Path:
    """The file of generation ``number`` (1 is the configured file itself)."""
    if number == 1:
        return base
    return base.with_name(f"{base.stem}.g{number}{base.suffix}")


def generation_number(base: Path, name: str) -> int | None:
    """The number of the generation file called ``name``, None if it is not one."""
    if name == base.name:
        return 1
    found = re.fullmatch(re.escape(base.stem) + r"\.g([0-9]+)" + re.escape(base.suffix), name)
    return int(found.group(1)) if found else None


class SqliteGenerations:
    def __init__(self, url: str) -> None:
        self._url = make_url(url)
        assert self._url.database
        self.base = Path(self._url.database)
        self.pointer = self.base.with_name(self.base.name + ".current")

    def _generation(self, path: Path) -> Generation:
        url = self._url.set(database=str(path)).render_as_string(hide_password=False)
        return Generation(path.name, url)

    async def live(self) -> Generation:
        try:
            name = self.pointer.read_text().strip()
        except FileNotFoundError:
            name = self.base.name
        if generation_number(self.base, name) is None:
            raise ValueError(f"{self.pointer} names {name!r}, not a generation of "
                             f"{self.base.name}")
        return self._generation(self.base.with_name(name))

    def existing(self) -> list[int]:
        """The numbers of the generation files present, live or not."""
        folder = self.base.parent
        if not folder.is_dir():
            return []
        numbers = (generation_number(self.base, p.name) for p in folder.iterdir())
        return sorted(n for n in numbers if n is not None)

    async def prepare(self) -> Generation:
        live = generation_number(self.base, (await self.live()).name) or 1
        present = self.existing()
        for number in present:  # an interrupted rebuild's (or a kept old one)
            if number != live:
                _remove_files(generation_file(self.base, number))
        # Never reuse the number of a generation a slow reader may still have open.
        number = max([live, *present]) + 1
        return self._generation(generation_file(self.base, number))

    async def switch(self, to: Generation) -> None:
        if generation_number(self.base, to.name) is None:
            raise ValueError(f"{to.name!r} is not a generation of {self.base.name}")
        temporary = self.pointer.with_name(self.pointer.name + ".tmp")
        with temporary.open("w") as out:
            out.write(to.name + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.pointer)
        # The rename itself is durable once the directory is synced.
        directory = os.open(self.pointer.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def remove(self, generation: Generation) -> None:
        if generation.name == (await self.live()).name:
            raise ValueError(f"{generation.name} is live: not removed")
        _remove_files(self.base.with_name(generation.name))

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        self.base.parent.mkdir(parents=True, exist_ok=True)
        path = self.base.with_name(self.base.name + ".rebuild.lock")
        with path.open("a") as held:
            try:
                fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Unsupported(f"another rebuild of {self.base} is under way "
                                  f"(it holds {path})") from None
            try:
                yield
            finally:
                fcntl.flock(held.fileno(), fcntl.LOCK_UN)

    async def close(self) -> None:
        pass


def _remove_files(path: Path) -> None:
    for side in _SIDE_FILES:
        Path(str(path) + side).unlink(missing_ok=True)


def generations_for(url: str) -> Generations:
    """The generations of the store ``url`` names."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if not parsed.database or parsed.database == ":memory:":
            return FixedStore(url, "an in-memory database has nothing to switch: restart "
                                   "the projector instead")
        return SqliteGenerations(url)
    if parsed.drivername == "postgresql+asyncpg":
        from projections.pg_generations import PgGenerations  # it imports this module

        return PgGenerations(url)
    return FixedStore(url, f"rebuilding into a new generation is implemented for SQLite "
                           f"and PostgreSQL on asyncpg, not {parsed.drivername}")


async def live_url(url: str) -> str:
    """The URL of the live generation of the store ``url`` names: what to open, since
    after a rebuild the configured place itself may hold nothing."""
    generations = generations_for(url)
    try:
        return (await generations.live()).url
    finally:
        await generations.close()
