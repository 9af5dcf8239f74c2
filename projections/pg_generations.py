"""Generations of a PostgreSQL store: a schema each, the pointer in a one-row table.

Generation 1 is the *base* schema: the one the configured URL's connections use
(``current_schema()``: ``public`` unless the URL's ``?search_path=`` or the role's setting
says otherwise); its URL is the configured one, so a store never rebuilt runs exactly as
before. Later generations are schemas beside it, ``jobledger_g2``, ``jobledger_g3`` ...
(``jobledger_<base>_g2`` ... when the base is not ``public``, so installations sharing a
database keep apart), and their URLs carry ``?search_path=<schema>`` (projections.db): a
generation's engine then makes and reads its tables, views and Alembic's version table
there, and sees no other generation's.

The pointer is the table ``jobledger_generation`` in the base schema, one row naming the
live schema; no table or no row means generation 1. ``switch`` upserts that row in one
transaction, so a reader sees the old name or the new one.
"""

import contextlib
import re
import zlib
from collections.abc import AsyncIterator

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.analytics import drop_views
from projections.db import SEARCH_PATH, make_engine
from projections.generations import Generation, Unsupported
from projections.migrate import VERSION_TABLE
from projections.tables import metadata

POINTER = "jobledger_generation"
# Not the migrations' key (projections.migrate.PG_LOCK_KEY): a rebuild holds this one for
# minutes, while the services' migrations take theirs at every start.
REBUILD_LOCK = b"jobledger.projections.rebuild"
# A schema dropped while a slow request still reads it waits for that request; past this,
# it gives up (the schema stays, and the next rebuild's prepare drops it).
DROP_WAIT_SECS = 30
# A base schema's name goes into generation names, used unquoted in search_path: nothing
# to quote, and short enough for PostgreSQL's 63 bytes with "jobledger_" and "_g<n>".
_PLAIN = re.compile(r"[a-z_][a-z0-9_]{0,39}")


class PgGenerations:
    def __init__(self, url: str) -> None:
        self._url = make_url(url)
        # The base schema's engine: the pointer, the lock, and generation 1's DDL. It
        # opens one connection, when first used (the pool grows only under concurrency).
        self.engine: AsyncEngine = make_engine(url)
        self._base: str | None = None

    async def base(self) -> str:
        """The base schema, asked of the server once (a role's search_path may name it)."""
        if self._base is None:
            async with self.engine.connect() as conn:
                schema = await conn.scalar(text("SELECT current_schema()"))
            if schema is None:
                raise ValueError(f"no schema of the search_path of {self._shown} exists")
            self._base = str(schema)
        return self._base

    @property
    def _shown(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def _prefix(self, base: str) -> str:
        return "jobledger" if base == "public" else f"jobledger_{base}"

    def _number(self, base: str, name: str) -> int | None:
        """The generation number of schema ``name``, None if it is not one."""
        if name == base:
            return 1
        found = re.fullmatch(re.escape(self._prefix(base)) + r"_g([0-9]+)", name)
        return int(found.group(1)) if found else None

    def _generation(self, base: str, schema: str) -> Generation:
        if schema == base:
            url = self._url  # generation 1: the configured URL, as before any rebuild
        else:
            url = self._url.update_query_dict({SEARCH_PATH: schema})
        return Generation(schema, url.render_as_string(hide_password=False))

    async def live(self) -> Generation:
        base = await self.base()
        async with self.engine.connect() as conn:
            name = await _pointer(conn, base) or base
        if self._number(base, name) is None:
            raise ValueError(f'"{base}".{POINTER} names {name!r}, not a generation of '
                             f"{base}")
        return self._generation(base, name)

    async def existing(self) -> list[int]:
        """The numbers of the generation schemas present besides the base, live or not."""
        base = await self.base()
        async with self.engine.connect() as conn:
            names = (await conn.execute(text("SELECT nspname FROM pg_namespace"))).scalars()
            numbers = (self._number(base, name) for name in names if name != base)
            return sorted(n for n in numbers if n is not None)

    async def prepare(self) -> Generation:
        base = await self.base()
        if not _PLAIN.fullmatch(base):
            raise Unsupported(f"the base schema {base!r} has a name that needs quoting: "
                              "rebuilds need a plain lowercase one")
        live = self._number(base, (await self.live()).name) or 1
        present = await self.existing()
        for number in present:  # an interrupted rebuild's (or a kept old one)
            if number != live:
                await self._drop(base, f"{self._prefix(base)}_g{number}")
        if live != 1:  # generation 1's objects, if its removal did not finish
            await self._drop(base, base)
        # Never reuse the number of a generation a slow reader may still have open.
        schema = f"{self._prefix(base)}_g{max([live, *present]) + 1}"
        async with self.engine.begin() as conn:
            await _make_pointer(conn, base)  # here, so that switch only writes a row
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        return self._generation(base, schema)

    async def switch(self, to: Generation) -> None:
        base = await self.base()
        if self._number(base, to.name) is None:
            raise ValueError(f"{to.name!r} is not a generation of {base}")
        async with self.engine.begin() as conn:
            exists = await conn.scalar(text("SELECT 1 FROM pg_namespace WHERE nspname = :n"),
                                       {"n": to.name})
            if not exists:
                raise ValueError(f"no schema {to.name}: not switched")
            await _make_pointer(conn, base)
            await conn.execute(text(
                f'INSERT INTO "{base}".{POINTER} (one, live) VALUES (true, :live) '
                "ON CONFLICT (one) DO UPDATE SET live = excluded.live, switched_at = now()"),
                {"live": to.name})

    async def remove(self, generation: Generation) -> None:
        base = await self.base()
        if generation.name == (await self.live()).name:
            raise ValueError(f"{generation.name} is live: not removed")
        if self._number(base, generation.name) is None:
            raise ValueError(f"{generation.name!r} is not a generation of {base}")
        await self._drop(base, generation.name)

    async def _drop(self, base: str, schema: str) -> None:
        async with self.engine.begin() as conn:
            await conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{DROP_WAIT_SECS}s'")
            if schema == base:
                # The base schema holds the pointer (and may hold what is not ours): only
                # the read models go.
                await conn.run_sync(_drop_read_models)
            else:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        base = await self.base()
        # Advisory locks are per database: one per base schema, so installations sharing
        # a database do not wait on each other.
        key = zlib.crc32(REBUILD_LOCK + b":" + base.encode())
        async with self.engine.connect() as conn:
            # A session lock, held as long as this connection: autocommit, so that holding
            # it for the whole rebuild is not a transaction left open for minutes.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if not await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
                raise Unsupported(f"another rebuild of {self._shown} (schema {base}) is "
                                  f"under way (it holds PostgreSQL advisory lock {key})")
            try:
                yield
            finally:
                with contextlib.suppress(DBAPIError):  # a lost session released it already
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    async def close(self) -> None:
        await self.engine.dispose()


async def _pointer(conn: AsyncConnection, base: str) -> str | None:
    """The schema the pointer names; None where no rebuild ever switched."""
    if await conn.scalar(text("SELECT to_regclass(:t)"), {"t": f'"{base}".{POINTER}'}) is None:
        return None
    live = await conn.scalar(text(f'SELECT live FROM "{base}".{POINTER}'))
    return None if live is None else str(live)


async def _make_pointer(conn: AsyncConnection, base: str) -> None:
    # one: true, the primary key, and checked true: at most one row.
    await conn.execute(text(
        f'CREATE TABLE IF NOT EXISTS "{base}".{POINTER} ('
        "one boolean PRIMARY KEY DEFAULT true CHECK (one), live text NOT NULL, "
        "switched_at timestamptz NOT NULL DEFAULT now())"))


def _drop_read_models(conn: Connection) -> None:
    """What migrations made in the connection's schema: views, tables, version table."""
    drop_views(conn)
    metadata.drop_all(conn)
    conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
