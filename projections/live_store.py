"""The engine of the live generation, for a process that serves or writes the read models
(the projector, the API): it notices a rebuild's switch and reopens on the new generation.

Noticing costs one read of the pointer (a tiny file for SQLite, a one-row table for
PostgreSQL) at most once per ``CHECK_SECS``, however many requests or batches ask.
"""

import logging
import time

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.db import make_engine
from projections.generations import Generation, Generations, generations_for
from projections.migrate import migrate

log = logging.getLogger(__name__)

CHECK_SECS = 1.0


class LiveStore:
    """``open`` first: which generation is live is known only once the pointer is read
    (a query, on PostgreSQL)."""

    generation: Generation  # set by open
    engine: AsyncEngine

    def __init__(self, url: str, check_secs: float = CHECK_SECS) -> None:
        self.generations: Generations = generations_for(url)
        self.check_secs = check_secs
        self._checked = time.monotonic()
        self._opened = False

    async def open(self) -> AsyncEngine:
        """Open the live generation, migrated to the newest schema; return its engine."""
        self.generation = await self.generations.live()
        self.engine = make_engine(self.generation.url)
        self._opened, self._checked = True, time.monotonic()
        await migrate(self.engine)
        return self.engine

    async def switched(self) -> bool:
        """Whether a rebuild made another generation live since the last look. If so,
        ``engine`` is now on it (schema in place) and the old engine is disposed: requests
        still holding one of its connections finish on it, nothing new uses it."""
        now = time.monotonic()
        if now - self._checked < self.check_secs:
            return False
        self._checked = now
        try:
            live = await self.generations.live()
        # A pointer being replaced, a bad one, or (PostgreSQL) the server briefly away:
        # serve on from the generation open now, and look again next time.
        except (OSError, ValueError, DBAPIError) as exc:
            log.warning("reading the live generation failed: %s", exc)
            return False
        if live == self.generation:
            return False
        engine = make_engine(live.url)
        try:
            await migrate(engine)
        except Exception:
            await engine.dispose()
            raise
        old, self.engine, self.generation = self.engine, engine, live
        await old.dispose()
        log.info("the read models moved to generation %s", live.name)
        return True

    async def close(self) -> None:
        if self._opened:
            await self.engine.dispose()
        await self.generations.close()
