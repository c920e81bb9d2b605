"""Flag definitions cached per process, kept fresh across replicas by LISTEN/NOTIFY.

A trigger (migration) notifies `feature_flags_changed` on every write to the flag tables;
each process listens on a dedicated connection and reloads on notice. While that connection
is down the cache is trusted for at most one second, so a change made through any replica
is served by every other within a second either way. Per request, one small query fetches
the caller's node path and the overrides that can apply to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from litestar import Litestar

from api.db import engine, fetch
from api.flags.evaluate import Evaluation, FlagDefinition, FlagOverride, evaluate_flag

CHANNEL = "feature_flags_changed"
UNSYNCED_TTL = 1.0
SYNCED_TTL = 300.0
logger = logging.getLogger("api.flags.store")


class FlagCache:
    def __init__(self) -> None:
        self._flags: dict[str, FlagDefinition] = {}
        self._loaded_at = -1e9
        self._stale = True
        self.listening = False
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._stale = True

    def _fresh(self) -> bool:
        ttl = SYNCED_TTL if self.listening else UNSYNCED_TTL
        return not self._stale and time.monotonic() - self._loaded_at < ttl

    async def flags(self) -> dict[str, FlagDefinition]:
        if self._fresh():
            return self._flags
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
    """Every non-archived flag for the user: the cache plus one small query."""
    flags = await flag_cache.flags()
    targeting = await load_targeting(user_id, node_id)
    now = datetime.now(UTC)
    return [
        evaluate_flag(flag, user_id, targeting.node_path, targeting.overrides, now)
        for flag in flags.values()
        if not flag.archived
    ]


async def evaluate_one(key: str, user_id: int, node_id: int | None = None) -> Evaluation:
    flag = (await flag_cache.flags()).get(key)
    if flag is None or flag.archived:
        return evaluate_flag(None, user_id, (), (), datetime.now(UTC), key=key)
    targeting = await load_targeting(user_id, node_id)
    return evaluate_flag(flag, user_id, targeting.node_path, targeting.overrides, datetime.now(UTC))


async def _listen_forever(cache: FlagCache) -> None:
    dsn = engine().config["dsn"]
    while True:
        connection: Any = None
        try:
            connection = await asyncpg.connect(dsn, timeout=2)
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _, lost=lost: lost.set())
            await connection.add_listener(CHANNEL, lambda *_: cache.invalidate())
            cache.listening = True
            cache.invalidate()  # anything may have changed while we were not listening
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=5)
                if not lost.is_set():
                    await connection.execute("SELECT 1")  # notices a silently dead socket
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            logger.info("flag change listener disconnected: %s", type(exc).__name__)
        finally:
            cache.listening = False
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.close()
        await asyncio.sleep(1)


@asynccontextmanager
async def flag_change_listener(_: Litestar) -> AsyncIterator[None]:
    task = asyncio.create_task(_listen_forever(flag_cache))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
