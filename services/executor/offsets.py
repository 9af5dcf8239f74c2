"""Which dispatch offsets are done, per partition, and what to commit for them. Pure.

Orders finish out of order (a slow endpoint next to fast ones), so the committed offset is
the low watermark: every offset below it is done. Offsets above it that are done too go
into the commit's metadata as ranges ("jl1:105-240,242-300"), and are read back on
assignment, so that a restart does not call again an attempt that finished above a slow
one. The ranges are the gaps between in-flight offsets, so there are at most as many as
orders in flight; metadata that would not fit Kafka's limit is cut (the orders cut are
then called again after a restart, as at-least-once allows).
"""

from dataclasses import dataclass, field

METADATA_PREFIX = "jl1:"
# Kafka's offset.metadata.max.bytes is 4096 by default; the metadata is ASCII.
MAX_METADATA_CHARS = 4000
# Ranges read back are bounded too, whatever the metadata holds.
MAX_RANGES_READ = 10_000

Range = tuple[int, int]  # inclusive


def encode_ranges(ranges: list[Range], max_chars: int = MAX_METADATA_CHARS) -> str:
    """``jl1:a-b,c`` for the ranges in order, as many as fit in ``max_chars``."""
    text = METADATA_PREFIX
    for index, (first, last) in enumerate(ranges):
        item = str(first) if first == last else f"{first}-{last}"
        candidate = text + ("," if index else "") + item
        if len(candidate) > max_chars:
            break
        text = candidate
    return text if ranges and text != METADATA_PREFIX else ""


def decode_ranges(metadata: str | None) -> list[Range]:
    """The ranges in committed metadata; anything unreadable counts as none (the orders
    are then called again, which is safe), never as an error."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return []
    ranges: list[Range] = []
    for item in metadata[len(METADATA_PREFIX):].split(",")[:MAX_RANGES_READ]:
        first_text, _, last_text = item.partition("-")
        last_text = last_text or first_text
        if not (first_text.isdigit() and last_text.isdigit()
                and len(first_text) <= 19 and len(last_text) <= 19):
            return []
        first, last = int(first_text), int(last_text)
        if last < first or (ranges and first <= ranges[-1][1]):
            return []
        ranges.append((first, last))
    return ranges


@dataclass
class PartitionProgress:
    """One partition's orders, from assignment until revocation.

    Records arrive in offset order. Every offset below ``next_offset`` was either fetched
    or does not exist (compaction, transaction markers), so "done" is simply: fetched and
    no longer in flight.
    """

    # One past the last offset fetched (where the consumer resumes); None until known.
    next_offset: int | None = None
    in_flight: set[int] = field(default_factory=set)
    # Offsets done in an earlier life (read from the committed metadata), not fetched yet.
    done_before: list[Range] = field(default_factory=list)
    # The last (offset, metadata) committed or read back, to commit only what changed.
    committed: tuple[int, str] | None = None

    @classmethod
    def from_committed(cls, offset: int | None, metadata: str | None) -> "PartitionProgress":
        if offset is None or offset < 0:
            return cls()
        done = [(max(a, offset), b) for a, b in decode_ranges(metadata) if b >= offset]
        return cls(next_offset=offset, done_before=done, committed=(offset, metadata or ""))

    def fetched(self, offset: int) -> bool:
        """Record that ``offset`` arrived; True if it must be carried out, False if it is
        done already (in an earlier life, or fetched twice)."""
        if self.next_offset is not None and offset < self.next_offset:
            return False
        self.next_offset = offset + 1
        while self.done_before and self.done_before[0][1] < offset:
            self.done_before.pop(0)
        if self.done_before and self.done_before[0][0] <= offset:
            return False
        self.in_flight.add(offset)
        return True

    def finished(self, offset: int) -> None:
        self.in_flight.discard(offset)

    def watermark(self) -> int | None:
        """The offset to commit: every offset below it is done."""
        if self.in_flight:
            return min(self.in_flight)
        mark = self.next_offset
        if mark is None:
            return None
        # Offsets done in an earlier life right above count too, fetched yet or not.
        for first, last in self.done_before:
            if first > mark:
                break
            mark = max(mark, last + 1)
        return mark

    def done_above(self) -> list[Range]:
        """Done offsets above the watermark, as ranges: the gaps between in-flight offsets
        up to the last one fetched, then what the earlier life left and we did not reach."""
        ranges: list[Range] = []
        if self.next_offset is not None and self.in_flight:
            edges = sorted(self.in_flight)
            for low, high in zip(edges, [*edges[1:], self.next_offset], strict=True):
                if high - low > 1:
                    ranges.append((low + 1, high - 1))
        for first, last in self.done_before:
            if ranges and first <= ranges[-1][1] + 1:
                ranges[-1] = (ranges[-1][0], max(last, ranges[-1][1]))
            else:
                ranges.append((first, last))
        mark = self.watermark()
        return [r for r in ranges if mark is None or r[0] > mark]

    def commit_point(self, max_chars: int = MAX_METADATA_CHARS) -> tuple[int, str] | None:
        """(offset, metadata) to commit, or None if there is nothing new to commit."""
        offset = self.watermark()
        if offset is None:
            return None
        point = (offset, encode_ranges(self.done_above(), max_chars))
        return None if point == self.committed else point

    def committed_at(self, point: tuple[int, str]) -> None:
        self.committed = point
