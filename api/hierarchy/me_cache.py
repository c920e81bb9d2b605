"""Each user's encoded `/me`, kept per process and dropped on `me_changed` notices.

A trigger (migration 2026-11-25T12:10) notifies `me_changed` with the user's id when their
row, assignments or permission overrides change, and with an empty payload when nodes are
renamed, moved or deleted. An entry also ends when one of the user's permission overrides
expires, and after ME_SECONDS at most. Like every cache here it is trusted only while the
LISTEN connection is up; without it each request describes the user afresh.
"""

from __future__ import annotations

import time

from api.auth.identity import Caller
from api.platform.cache import BoundedCache
from api.platform.db.changes import listener
from api.platform.metrics import cache_counters

CHANNEL = "me_changed"
ME_SECONDS = 300.0
ME_LIMIT = 100_000
_ME_HIT, _ME_MISS = cache_counters("me")


class MeCache:
    def __init__(self) -> None:
        # (user id, described as super-admin?) -> (monotonic expiry, encoded body)
        self.entries: BoundedCache[tuple[int, bool], tuple[float, bytes]] = BoundedCache(ME_LIMIT)
        self.generation = 0

    def changed(self, payload: str | None) -> None:
        """A notice: one user's entry goes, or (no user named) all of them."""
        self.generation += 1
        if payload and payload.isdigit():
            self.entries.discard((int(payload), True))
            self.entries.discard((int(payload), False))
        else:
            self.entries.clear()

    def get(self, caller: Caller) -> bytes | None:
        if not listener.connected:
            _ME_MISS.inc()
            return None
        entry = self.entries.get((caller.user_id, caller.is_super_admin))
        if entry is None or time.monotonic() > entry[0]:
            _ME_MISS.inc()
            return None
        _ME_HIT.inc()
        return entry[1]

    def put(self, caller: Caller, until: float, body: bytes, generation: int) -> None:
        if listener.connected and generation == self.generation:
            self.entries.put((caller.user_id, caller.is_super_admin), (until, body))


me_cache = MeCache()
listener.on_payload(CHANNEL, me_cache.changed)
