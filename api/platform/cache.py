"""A bounded least-recently-used map for per-process caches of per-user results.

Keys and values should be atomic (ints, strings, bytes, tuples of those): the garbage
collector stops tracking such tuples, so a full cache adds nothing to collection pauses.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most `limit` entries; a hit makes its entry the most recent, inserting past the
    limit drops the least recently used one."""

    __slots__ = ("_entries", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entries = self._entries
        value = entries.pop(key, None)
        if value is not None:
            entries[key] = value
        return value

    def put(self, key: K, value: V) -> None:
        entries = self._entries
        entries.pop(key, None)
        entries[key] = value
        if len(entries) > self.limit:
            del entries[next(iter(entries))]

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries = {}
