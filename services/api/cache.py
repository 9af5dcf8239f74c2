"""A small time-bounded cache for job definitions read on every trigger.

A trigger needs its job's id and payload_schema; reading them from the read models on
every request was the API's largest cost under load. The processor decides every trigger
against the job's own state (an unknown or disabled job is still refused there), so a
definition up to ``TTL_SECS`` old only delays when a new payload_schema is first applied.
"""

import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")

TTL_SECS = 2.0
MAX_ENTRIES = 10_000


class TtlCache(Generic[V]):
    def __init__(self, ttl: float = TTL_SECS, size: int = MAX_ENTRIES) -> None:
        self.ttl, self.size = ttl, size
        self._entries: OrderedDict[tuple[str, str], tuple[float, V]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> V | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return None
        return entry[1]

    def put(self, key: tuple[str, str], value: V) -> None:
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, *key: str) -> None:
        """Drop one entry (a deleted job must not be found from the cache)."""
        self._entries.pop((key[0], key[1]), None)
