"""Generations of the read-model store: rebuild into a fresh place, then switch.

The configured database URL names a *place*; the read models live in one generation of
it at a time. A small pointer says which generation is live. ``jobledger projections
rebuild`` fills a new generation from the log while the live one keeps serving, then
moves the pointer; the projector and the API look at the pointer about once a second
(``LiveStore``) and reopen their engines on the new generation.

SQLite (done): generation 1 is the configured file itself (``jobledger.db``), later ones
are siblings (``jobledger.g2.db``, ``jobledger.g3.db`` ...). The pointer is a sibling text
file, ``jobledger.db.current``, holding the live file's name; it is replaced atomically
(write a temporary file, fsync, rename), so a reader sees the old name or the new one,
never half of one. No pointer file means generation 1.

PostgreSQL (not done yet): the same interface would keep a schema per generation
(``jobledger_g2``) and the pointer in a one-row table, the engine's ``search_path`` naming
the live schema. Until then a PostgreSQL URL has one fixed generation: the services run
as before and ``rebuild`` refuses with a message (``Unsupported``).
"""

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
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
    def live(self) -> Generation:
        """The generation serving now (cheap: the services call it about once a second)."""
        ...

    def prepare(self) -> Generation:
        """A new, empty place for the next generation (leftovers of an interrupted
        rebuild are removed first). Call under ``lock``."""
        ...

    def switch(self, to: Generation) -> None:
        """Make ``to`` the live generation, atomically."""
        ...

    def remove(self, generation: Generation) -> None:
        """Delete a generation that is not live."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by a rebuild: one at a time per store. Raises Unsupported if taken."""
        ...


class FixedStore:
    """One generation only: a store this module cannot generate (PostgreSQL for now, or
    an in-memory SQLite database). The services use it unchanged; rebuilds refuse."""

    def __init__(self, url: str, why: str) -> None:
        self._live, self._why = Generation("fixed", url), why

    def live(self) -> Generation:
        return self._live

    def prepare(self) -> Generation:
        raise Unsupported(self._why)

    def switch(self, to: Generation) -> None:
        raise Unsupported(self._why)

    def remove(self, generation: Generation) -> None:
        raise Unsupported(self._why)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        raise Unsupported(self._why)


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

    def live(self) -> Generation:
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

    def prepare(self) -> Generation:
        live = generation_number(self.base, self.live().name) or 1
        present = self.existing()
        for number in present:  # an interrupted rebuild's (or a kept old one)
            if number != live:
                _remove_files(generation_file(self.base, number))
        # Never reuse the number of a generation a slow reader may still have open.
        number = max([live, *present]) + 1
        return self._generation(generation_file(self.base, number))

    def switch(self, to: Generation) -> None:
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

    def remove(self, generation: Generation) -> None:
        if generation.name == self.live().name:
            raise ValueError(f"{generation.name} is live: not removed")
        _remove_files(self.base.with_name(generation.name))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
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
    return FixedStore(url, f"rebuilding into a new generation is not implemented for "
                           f"{parsed.get_backend_name()} yet (SQLite only)")
