"""Run retention (seed 004's purgeAt): how long a run's data is kept after it ends.

Pure: the projector gives it a project's settings as they were recorded on the log (when
each was set, and to how many days) and the time a run ended, and gets the run's
``purge_at``. A setting applies to the runs that END at or after the moment it was set
(by the log's times, not by when the projector happened to apply it), so the answer is
the same however the partitions of a replay interleave.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

DEFAULT_RETENTION_DAYS = 30  # seed 004: "retained for 30 days by default"
MIN_RETENTION_DAYS = 1  # 0 would purge a run as it ends: its result never readable
MAX_RETENTION_DAYS = 3650

# A setting as recorded: since when (the event's occurred_at), its order on the project's
# stream (breaks a tie of times), and the days.
Setting = tuple[datetime, int, int]


def retention_days(settings: Iterable[Setting], ended_at: datetime) -> int:
    """The days in force when a run ended: the latest setting made at or before then,
    else the default."""
    in_force = [s for s in settings if s[0] <= ended_at]
    if not in_force:
        return DEFAULT_RETENTION_DAYS
    return max(in_force, key=lambda s: (s[0], s[1]))[2]


def purge_at(settings: Iterable[Setting], ended_at: datetime) -> datetime:
    """When a run that ended at ``ended_at`` is purged from the read models."""
    return ended_at + timedelta(days=retention_days(settings, ended_at))


def valid_days(days: int) -> bool:
    return MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS
