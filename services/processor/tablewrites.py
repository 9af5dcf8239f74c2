"""A batch's table writes: the last value per key, sent in one go to its command's partition.

The store writes to its faust tables as to dicts (``BufferedTable``). While a batch is
stored (``collect``), those writes are kept: a later command's write of a key supersedes
an earlier one's (the same end state, fewer changelog records), and each remembers the
event of the command that made it. ``write`` then puts the values in the tables and hands
every changelog record to the producer at once, to the partition of its command's event
(a job's state belongs in the changelog partition its commands are read from, or a
restart restores it elsewhere), and returns once the broker has them all.

Why not faust's own table writes: faust takes a write's partition from the *current
event* (a context variable its stream sets per event, absent in a batch), and it sends
changelog records through its producer buffer and ``Topic.publish_message``, which yields
to the event loop three times per record (a stampede guard around starting the
producer). The client then sends each record or two in its own request, one round trip
each, and a crash can cut a batch's state in half: a job's new state stored, its run's
not. Handed over without a yield, the records of a batch leave in one request.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from faust.types import EventT, TableT

_DELETED = object()  # a pending deletion
_ABSENT = object()  # no pending write
Pending = tuple[TableT, Any, Any, EventT]  # table, key, value (or _DELETED), event
# topic, key, value (None: a deletion), partition -> the delivery future
Send = Callable[[str, bytes | None, bytes | None, int | None], Awaitable[Awaitable[Any]]]


class BatchWrites:
    """Collects the writes of the tables that share it while a batch is stored."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, Any], Pending] | None = None
        # The event of the command whose writes are being made (set by the caller).
        self.event: EventT | None = None
        self.sent = 0  # changelog records sent
        self.superseded = 0  # writes replaced by a later one of the same batch

    def collect(self) -> None:
        """Keep the writes made from now on, until ``write``."""
        self._pending = {}

    async def write(self, send: Send) -> None:
        """Store what was collected; return once the changelog records are on the broker.
        Nothing is awaited until every record is handed over."""
        pending = list((self._pending or {}).values())
        self._pending = None
        deliveries = [await self._write(send, *item) for item in pending]
        self.sent += len(deliveries)
        await asyncio.gather(*deliveries)

    @staticmethod
    async def _write(send: Send, table: TableT, key: Any, value: Any,
                     event: EventT) -> Awaitable[Any]:
        # What faust's Table.__setitem__ does, minus its changelog path: the store's value
        # (raw bytes both ways, as the tables are declared), then the changelog record.
        if value is _DELETED:
            table.data.pop(key, None)
            value = None
        else:
            table.data[key] = value
        topic = table.changelog_topic.get_topic_name()
        return await send(topic, key, value, event.message.partition)

    def put(self, table: TableT, key: Any, value: Any) -> None:
        if self._pending is None:
            raise RuntimeError("a table write outside a batch: it would have no partition")
        if self.event is None:
            raise RuntimeError("a batched table write without its command's event")
        slot = (id(table), key)
        if slot in self._pending:
            self.superseded += 1
        # A key keeps its first place and takes its last value: the records go out in the
        # order the commands first wrote them.
        self._pending[slot] = (table, key, value, self.event)

    def peek(self, table: TableT, key: Any) -> Any:
        """The pending value of ``key``, ``_DELETED``, or ``_ABSENT`` (nothing pending)."""
        found = self._pending.get((id(table), key)) if self._pending else None
        return _ABSENT if found is None else found[2]


class BufferedTable:
    """A faust table whose writes go through ``BatchWrites``; everything else is the
    table's own."""

    def __init__(self, table: TableT, writes: BatchWrites) -> None:
        self.table, self.writes = table, writes

    def __setitem__(self, key: Any, value: Any) -> None:
        self.writes.put(self.table, key, value)

    def __delitem__(self, key: Any) -> None:
        self.writes.put(self.table, key, _DELETED)

    def get(self, key: Any, default: Any = None) -> Any:
        value = self.writes.peek(self.table, key)
        if value is _ABSENT:
            return self.table.get(key, default)
        return default if value is _DELETED else value

    def __getitem__(self, key: Any) -> Any:
        value = self.writes.peek(self.table, key)
        if value is _ABSENT:
            return self.table[key]
        if value is _DELETED:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        value = self.writes.peek(self.table, key)
        return key in self.table if value is _ABSENT else value is not _DELETED

    def __iter__(self) -> Iterator[Any]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)
