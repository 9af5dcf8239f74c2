"""The pure part of a rebuild: how far behind the log it is, when it has caught up, and the
progress line it prints (services.projector.rebuild does the I/O)."""

from dataclasses import dataclass


def events_behind(positions: dict[int, int], ends: dict[int, int]) -> int:
    """Records still to fetch: for each partition, its end offset less the next offset the
    rebuild will read (a partition with no position yet counts from 0)."""
    return sum(max(0, end - positions.get(partition, 0)) for partition, end in ends.items())


def caught_up(positions: dict[int, int], ends: dict[int, int]) -> bool:
    """Every partition read up to the end offsets seen (records written after that are
    left to the live projector, which resumes from the new generation's offsets)."""
    return events_behind(positions, ends) == 0


@dataclass(slots=True)
class Progress:
    """Running totals; ``line`` is what the command prints about once a second."""

    started: float
    applied: int = 0  # events applied to the new generation (repeats skipped not counted)
    read: int = 0  # records read from the log
    last_at: float = 0.0
    last_read: int = 0

    def line(self, now: float, behind: int) -> str:
        elapsed = max(now - self.started, 1e-9)
        window = now - (self.last_at or self.started)
        recent = (self.read - self.last_read) / window if window > 0 else 0.0
        self.last_at, self.last_read = now, self.read
        return (f"rebuild: {self.read} records read, {self.applied} events applied, "
                f"{recent:,.0f} records/s now ({self.read / elapsed:,.0f} overall), "
                f"{behind} behind")

    def rate(self, now: float) -> float:
        """Records per second since the start."""
        return self.read / max(now - self.started, 1e-9)
