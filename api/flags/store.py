"""Flag definitions cached per process, kept fresh across replicas by LISTEN/NOTIFY.

A trigger (migration) notifies `feature_flags_changed` on every write to the flag tables;
each process listens on a dedicated connection and reloads on notice. While that connection
is down the cache is trusted for at most one second, so a change made through any replica
is served by every other within a second either way. Per request, one small query fetches
the caller's node path and the overrides that can apply to them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from api.bounded_cache import BoundedCache
from api.db import fetch
from api.flags.evaluate import Evaluation, FlagDefinition, FlagOverride, evaluate_flag
from api.notifications import listener

CHANNEL = "feature_flags_changed"
UNSYNCED_TTL = 1.0
SYNCED_TTL = 300.0
RESULT_SECONDS = 300.0
RESULT_JITTER = 0.2  # results made together end over the last fifth of RESULT_SECONDS
RESULT_LIMIT = 100_000
logger = logging.getLogger("api.flags.store")


class UserFlags(NamedTuple):
    """One user's evaluated flags, encoded once for both the REST list and OFREP bulk.

    Only bytes and numbers, so that a full cache costs the garbage collector nothing."""

    until: float
    features_json: bytes
    ofrep_json: bytes
    etag: bytes


def encode_user_flags(results: list[Evaluation], until: float) -> UserFlags:
    features = msgspec.json.encode(
        {"flags": [{"key": e.key, "value": e.value, "reason": e.reason.value} for e in results]}
    )
    ofrep = msgspec.json.encode(
        {
            "flags": [
                {
                    "key": e.key,
                    "value": e.value,
                    "reason": e.reason.value,
                    "variant": e.variant,
                    "metadata": {},
                }
                for e in results
            ]
        }
    )
    etag = b'"' + hashlib.sha256(ofrep).hexdigest()[:32].encode() + b'"'
    return UserFlags(until, features, ofrep, etag)


class FlagCache:
    def __init__(self) -> None:
        self._flags: dict[str, FlagDefinition] = {}
        self._loaded_at = -1e9
        self._stale = True
        self._lock = asyncio.Lock()
        self._reload: asyncio.Task[dict[str, FlagDefinition]] | None = None
        self.results: BoundedCache[tuple[int, int | None], UserFlags] = BoundedCache(RESULT_LIMIT)
        self.generation = 0
        """Moves on every invalidation: results computed across one are not kept."""

    def invalidate(self) -> None:
        self._stale = True
        self.generation += 1
        self.results.clear()

    def cached_results(self, user_id: int, node_id: int | None) -> UserFlags | None:
        """A user's evaluated flags, trusted only while change notices are arriving."""
        if not listener.connected or self._stale:
            return None
        entry = self.results.get((user_id, node_id))
        if entry is None or time.monotonic() > entry.until:
            return None
        return entry

    def keep_results(
        self, user_id: int, node_id: int | None, flags: UserFlags, generation: int
    ) -> None:
        if not listener.connected or generation != self.generation:
            return
        self.results.put((user_id, node_id), flags)

    def _fresh(self) -> bool:
        ttl = SYNCED_TTL if listener.connected else UNSYNCED_TTL
        return not self._stale and time.monotonic() - self._loaded_at < ttl

    async def flags(self) -> dict[str, FlagDefinition]:
        if self._fresh():
            return self._flags
        if listener.connected and not self._stale:
            # Only the periodic reload is due (no change notice): serve what we have while
            # one task reloads, rather than making every request wait for it.
            if self._reload is None or self._reload.done():
                self._reload = asyncio.get_running_loop().create_task(self._load())
            return self._flags
        return await self._load()

    async def _load(self) -> dict[str, FlagDefinition]:
        async with self._lock:
            if self._fresh():
                return self._flags
            self._stale = False
            started = time.monotonic()
            rows = await fetch(
                "SELECT id, key, name, enabled, rollout_percentage, archived, version"
                " FROM feature_flags ORDER BY key"
            )
            self._flags = {row["key"]: FlagDefinition(**dict(row)) for row in rows}
            self._loaded_at = started
            return self._flags


flag_cache = FlagCache()
listener.on(CHANNEL, flag_cache.invalidate)

TARGETING_QUERY = """
WITH node AS (
  SELECT n.path FROM organization_hierarchy n
  WHERE n.id = COALESCE($2, (
    SELECT a.node_id FROM user_hierarchy_assignments a
    WHERE a.user_id = $1 AND a.is_active ORDER BY a.is_primary DESC, a.id LIMIT 1))
)
SELECT (SELECT path FROM node) AS path, o.flag_id, o.user_id, o.node_id, o.enabled, o.expires_at
FROM (SELECT 1) AS one
LEFT JOIN feature_flag_overrides o
  ON (o.user_id = $1 OR o.node_id = ANY(COALESCE((SELECT path FROM node), '{}')))
 AND (o.expires_at IS NULL OR o.expires_at > now())
"""


@dataclass(frozen=True, slots=True)
class Targeting:
    node_path: tuple[int, ...]
    overrides: tuple[FlagOverride, ...]


async def load_targeting(user_id: int, node_id: int | None = None) -> Targeting:
    """The user's node path (their primary node, or `node_id`) and the overrides on it."""
    rows = await fetch(TARGETING_QUERY, user_id, node_id)
    path = tuple(rows[0]["path"] or ()) if rows else ()
    overrides = tuple(
        FlagOverride(r["flag_id"], r["user_id"], r["node_id"], r["enabled"], r["expires_at"])
        for r in rows
        if r["flag_id"] is not None
    )
    return Targeting(path, overrides)


async def evaluate_all(user_id: int, node_id: int | None = None) -> list[Evaluation]:
    """Every non-archived flag for the user: the flag cache plus one small query."""
    return (await _evaluate_all(user_id, node_id))[0]


async def _evaluate_all(user_id: int, node_id: int | None) -> tuple[list[Evaluation], float]:
    """The evaluations, and the monotonic time until which they hold (the next expiry of an
    override that applied, at most RESULT_SECONDS away)."""
    flags = await flag_cache.flags()
    targeting = await load_targeting(user_id, node_id)
    now = datetime.now(UTC)
    # Each flag sees only its own overrides: evaluation stays linear in flags + overrides.
    by_flag: dict[int, list[FlagOverride]] = {}
    for override in targeting.overrides:
        by_flag.setdefault(override.flag_id, []).append(override)
    results = [
        evaluate_flag(flag, user_id, targeting.node_path, by_flag.get(flag.id, ()), now)
        for flag in flags.values()
        if not flag.archived
    ]
    # Jittered, so that users served together (a warm-up, a flag change) are not all
    # re-evaluated together RESULT_SECONDS later.
    until = time.monotonic() + RESULT_SECONDS * (1 - RESULT_JITTER * random.random())
    for override in targeting.overrides:
        if override.expires_at is not None:
            until = min(until, time.monotonic() + (override.expires_at - now).total_seconds())
    return results, until


async def user_flags(user_id: int, node_id: int | None = None) -> UserFlags:
    """Every non-archived flag for the user, encoded; kept per (user, node) until a change
    notice or the time `_evaluate_all` gives, in a bounded LRU."""
    cached = flag_cache.cached_results(user_id, node_id)
    if cached is not None:
        return cached
    generation = flag_cache.generation
    results, until = await _evaluate_all(user_id, node_id)
    evaluated = encode_user_flags(results, until)
    flag_cache.keep_results(user_id, node_id, evaluated, generation)
    return evaluated


async def evaluate_one(key: str, user_id: int, node_id: int | None = None) -> Evaluation:
    flag = (await flag_cache.flags()).get(key)
    if flag is None or flag.archived:
        return evaluate_flag(None, user_id, (), (), datetime.now(UTC), key=key)
    targeting = await load_targeting(user_id, node_id)
    return evaluate_flag(flag, user_id, targeting.node_path, targeting.overrides, datetime.now(UTC))
