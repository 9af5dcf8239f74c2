"""The retention sweep, run from the projector's loop between event batches.

The projector is the only writer of the read models, so the sweep runs there rather than
in a process of its own: no second writer to wait on SQLite's lock, and a sweep never
interleaves with half an event batch. Each turn purges at most ``batch`` runs in one
transaction (``projections.retention.sweep``), so event application waits at most one
such transaction; a backlog of due runs is taken a turn at a time.
"""

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.retention import sweep

log = logging.getLogger(__name__)

# Under a steady stream of full fetches the projector may never look caught up: the sweep
# then still runs once this many intervals have passed, so due runs are not kept forever.
STARVED_AFTER = 10


def skewed_clock(skew_secs: float) -> Callable[[], datetime]:
    """The sweep's clock: UTC now, moved ahead by ``skew_secs`` (a test seam; 0 in use)."""
    skew = timedelta(seconds=skew_secs)
    return lambda: datetime.now(UTC) + skew


class Sweeper:
    def __init__(self, engine: AsyncEngine, every_secs: float, batch: int,
                 clock: Callable[[], datetime]) -> None:
        self.engine, self.every_secs, self.batch, self.clock = engine, every_secs, batch, clock
        self.next_at = 0.0  # monotonic: the first turn sweeps
        self.purged = 0

    async def turn(self, caught_up: bool) -> int:
        """Sweep once if it is time and the projector is not working through a backlog
        of events (a run's purge_at may still be corrected by a setting further on, and
        events come first), or if a backlog has held it off for STARVED_AFTER intervals.
        Returns how many runs it purged."""
        now = time.monotonic()
        if now < self.next_at or (
                not caught_up and now < self.next_at + STARVED_AFTER * self.every_secs):
            return 0
        try:
            ids = await sweep(self.engine, self.clock(), self.batch)
        except Exception as exc:  # the database busy or away: the next turn tries again
            log.warning("retention sweep failed: %s", exc)
            self.next_at = time.monotonic() + self.every_secs
            return 0
        self.purged += len(ids)
        # A full batch: more may be due, so the next turn (after the next fetch) goes on.
        self.next_at = time.monotonic() + (0.0 if len(ids) >= self.batch else self.every_secs)
        if ids:
            log.info("retention: purged %d runs (%d in all)", len(ids), self.purged)
        return len(ids)
