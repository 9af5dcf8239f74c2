"""Reading the generations of a store from outside the services, for the rebuild tests:
the live one, every row of a table, what names a generation holds, its stored offsets, and
what is left of a removed one. One class per store; each reads with its own means (sqlite3
read-only; a SQLAlchemy engine on the generation's URL), not through the services."""

from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Table, select, text

from projections.db import make_engine
from projections.generations import Generation, generations_for
from projections.pg_generations import POINTER
from projections.tables import metadata, projector_offsets

# Columns whose values may differ between two stores that applied the same events, each
# with why. (run_events.position is being added for server-sent events: it numbers rows
# in the order a store applied them, and the live projector and the rebuild interleave
# the partitions differently.) Nothing else is left out.
EXCLUDED: dict[str, set[str]] = {"run_events": {"position"}}

Rows = dict[str, list[tuple[Any, ...]]]


def compared(table: Table) -> list[str]:
    return [c.name for c in table.columns if c.name not in EXCLUDED.get(table.name, ())]


class Place(Protocol):
    async def live(self) -> Generation: ...

    async def rows(self, generation: Generation) -> Rows:
        """Every table's rows (the compared columns), in primary key order."""
        ...

    async def names(self, generation: Generation) -> set[str]:
        """The tables, views and indexes of the read models."""
        ...

    async def offsets(self, generation: Generation, topic: str) -> dict[int, int]: ...

    async def remains(self, generation: Generation) -> list[str]:
        """What is left of a removed generation (nothing, once removed)."""
        ...

    async def status(self, generation: Generation, run_id: str) -> str | None: ...


async def live_generation(url: str) -> Generation:
    generations = generations_for(url)
    try:
        return await generations.live()
    finally:
        await generations.close()


class SqlitePlace:
    def __init__(self, url: str, base: Path) -> None:
        self.url, self.base = url, base

    def _read(self, generation: Generation, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        import sqlite3

        path = self.base.with_name(generation.name)
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute(sql, args).fetchall()

    async def live(self) -> Generation:
        return await live_generation(self.url)

    async def rows(self, generation: Generation) -> Rows:
        found = {}
        for table in metadata.sorted_tables:
            columns = compared(table)
            order = [c.name for c in table.primary_key.columns] or columns
            found[table.name] = self._read(
                generation, "SELECT " + ", ".join(f'"{c}"' for c in columns)
                + f' FROM "{table.name}" ORDER BY ' + ", ".join(f'"{c}"' for c in order))
        return found

    async def names(self, generation: Generation) -> set[str]:
        return {name for (name,) in self._read(
            generation, "SELECT name FROM sqlite_master WHERE type IN ('table', 'view', "
            "'index') AND name NOT LIKE 'sqlite_%'")}

    async def offsets(self, generation: Generation, topic: str) -> dict[int, int]:
        return dict(self._read(generation, "SELECT partition, next_offset FROM "
                               "projector_offsets WHERE topic = ?", topic))

    async def remains(self, generation: Generation) -> list[str]:
        return [p.name for p in self.base.parent.iterdir()
                if p.name.startswith(generation.name) and not p.name.endswith(".current")
                and not p.name.endswith(".lock")]

    async def status(self, generation: Generation, run_id: str) -> str | None:
        found = self._read(generation, "SELECT status FROM runs WHERE id = ?", run_id)
        return found[0][0] if found else None


class PostgresPlace:
    def __init__(self, url: str) -> None:
        self.url = url

    async def live(self) -> Generation:
        return await live_generation(self.url)

    async def _query(self, generation: Generation, *statements: Any) -> list[list[Any]]:
        engine = make_engine(generation.url)  # its search_path: that generation's schema
        try:
            async with engine.connect() as conn:
                return [list(await conn.execute(s)) for s in statements]
        finally:
            await engine.dispose()

    async def rows(self, generation: Generation) -> Rows:
        tables = metadata.sorted_tables
        read = await self._query(generation, *(
            select(*(t.c[c] for c in compared(t))).order_by(*t.primary_key.columns)
            for t in tables))
        return {t.name: [tuple(r) for r in rows] for t, rows in zip(tables, read, strict=True)}

    async def names(self, generation: Generation) -> set[str]:
        (rows,) = await self._query(generation, text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'i')"))
        return {name for (name,) in rows} - {POINTER, f"{POINTER}_pkey"}

    async def offsets(self, generation: Generation, topic: str) -> dict[int, int]:
        (rows,) = await self._query(generation, select(
            projector_offsets.c.partition, projector_offsets.c.next_offset).where(
            projector_offsets.c.topic == topic))
        return {partition: offset for partition, offset in rows}

    async def remains(self, generation: Generation) -> list[str]:
        base = make_engine(self.url)
        try:
            async with base.connect() as conn:
                found = await conn.execute(text(
                    "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace "
                    "n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relname NOT "
                    "LIKE :pointer"), {"s": generation.name, "pointer": f"{POINTER}%"})
                return [name for (name,) in found]
        finally:
            await base.dispose()

    async def status(self, generation: Generation, run_id: str) -> str | None:
        (rows,) = await self._query(generation, text("SELECT status FROM runs WHERE id = :i")
                                    .bindparams(i=run_id))
        return rows[0][0] if rows else None
