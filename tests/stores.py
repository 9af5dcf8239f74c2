"""The projection stores the tests run against: one abstract suite, two backends.

A test module that uses the read models declares ``pytestmark =
pytest.mark.usefixtures("store")``; the ``store`` fixture (tests/conftest.py) runs each of
its tests once on SQLite and once on PostgreSQL, and ``engine_at`` (what those tests call
for an empty, schema'd database) asks the active store for one. Outside such a module
``engine_at`` gives SQLite, as before.

On PostgreSQL each engine is a database of its own, cloned from a template that has the
schema (``CREATE DATABASE ... TEMPLATE``: a file copy, about 10 ms), so that a test starts
from empty tables as cheaply as with a new SQLite file. The template is made once per
session by ``create_schema`` itself, so whatever tables the code defines are there; no list
of tables is kept here.
"""

import contextlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.db import create_schema, make_engine


class Store(Protocol):
    name: str

    async def engine(self, path: Path) -> AsyncEngine:
        """A new, empty database with the schema (``path``: where SQLite keeps it)."""
        ...

    async def close(self) -> None: ...


class SqliteStore:
    name = "sqlite"

    def __init__(self) -> None:
        self._engines: list[AsyncEngine] = []

    async def engine(self, path: Path) -> AsyncEngine:
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
        self._engines.append(engine)
        await create_schema(engine)
        return engine

    async def close(self) -> None:
        for engine in self._engines:
            await engine.dispose()


def asyncpg_url(url: str) -> URL:
    """``url`` (postgresql://, postgresql+asyncpg://, ...) for SQLAlchemy on asyncpg."""
    return make_url(url).set(drivername="postgresql+asyncpg")


def dsn(url: URL, database: str) -> str:
    """What asyncpg itself connects to (no SQLAlchemy driver suffix)."""
    plain = url.set(drivername="postgresql", database=database)
    return plain.render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def empty_database(server: str, prefix: str) -> AsyncIterator[str]:
    """The URL of a new, empty database on ``server`` (no schema: what uses it makes it),
    named ``prefix`` and a random suffix; dropped afterwards."""
    url = asyncpg_url(server)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn(url, url.database or "postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield url.set(database=name).render_as_string(hide_password=False)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


# Per process (a session), so two test sessions on one JOBLEDGER_TEST_PG_URL server
# never use each other's databases.
_RUN = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
_templates: dict[str, str] = {}  # server URL -> its template database
_counter = itertools.count()


async def template_of(server: str) -> str:
    """The session's template database on ``server``: made (with the schema) once."""
    if server not in _templates:
        url = asyncpg_url(server)
        name = f"jl_tpl_{_RUN}"
        admin = await asyncpg.connect(dsn(url, url.database or "postgres"))
        try:
            # C collation: text sorts by bytes, as on SQLite (the tests compare orders with
            # Python's); template0 because only it may change the locale.
            await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                                "LC_COLLATE 'C' LC_CTYPE 'C'")
        finally:
            await admin.close()
        engine = make_engine(url.set(database=name).render_as_string(hide_password=False))
        try:
            await create_schema(engine)
        finally:
            await engine.dispose()  # a template may have no connections when it is copied
        _templates[server] = name
    return _templates[server]


async def drop_templates() -> None:
    """Drop the session's templates (on a server the tests did not start)."""
    for server, name in list(_templates.items()):
        url = asyncpg_url(server)
        admin = await asyncpg.connect(dsn(url, url.database or "postgres"))
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()
        del _templates[server]


class PostgresStore:
    name = "postgresql"

    def __init__(self, server: str) -> None:
        self.server = server
        self._url = asyncpg_url(server)
        self._made: list[tuple[str, AsyncEngine]] = []

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(dsn(self._url, self._url.database or "postgres"))

    async def engine(self, path: Path) -> AsyncEngine:
        template = await template_of(self.server)
        name = f"jl_t_{_RUN}_{next(_counter)}"
        admin = await self._admin()
        try:
            # FILE_COPY: copies the template's files (a checkpoint first), faster for a
            # small database than PostgreSQL 15's default of copying it through the WAL
            # (older servers know no other way, nor the option).
            strategy = " STRATEGY FILE_COPY" if admin.get_server_version().major >= 15 else ""
            await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}{strategy}")
        finally:
            await admin.close()
        engine = make_engine(self._url.set(database=name).render_as_string(hide_password=False))
        self._made.append((name, engine))
        await create_schema(engine)  # as every service does at start: finds it there
        return engine

    async def close(self) -> None:
        if not self._made:
            return
        for _, engine in self._made:
            await engine.dispose()
        admin = await self._admin()
        try:
            for name, _ in self._made:
                await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()
        self._made.clear()


_active: Store | None = None


def activate(store: Store | None) -> None:
    global _active
    _active = store


async def engine_at(path: Path) -> AsyncEngine:
    """An empty database with the schema, on the active store (SQLite if none)."""
    if _active is None:
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
        await create_schema(engine)
        return engine
    return await _active.engine(path)
