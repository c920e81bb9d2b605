"""Server-side sessions in Postgres (PRODUCT §5).

The cookie holds an opaque 256-bit token; only its SHA-256 is stored. The CSRF token is
derived from the session token, so it needs no storage and cannot be computed from a
database dump. Validity (idle and absolute expiry, active user) is checked in the same
query that loads the session.

Each process keeps recently validated sessions (a bounded LRU of at most CACHE_LIMIT, for
at most CACHE_SECONDS), but only while its LISTEN connection is up: ending a session,
cutting it short, or deactivating, demoting or renaming a user announces `sessions_changed`
(`api.auth.service`): the writer's process drops its cache at commit, before it answers,
and the database's NOTIFY tells every other replica. Sessions are started and ended only
by `api.auth.service`; this module reads them.
Without the listener every request asks the database. Reading a session writes nothing,
except `last_seen_at` at most once per TOUCH_INTERVAL per session, whichever replica asks.

A session still in use is re-read ahead of its expiry, in the background and in batches:
each entry is due for refresh at a random point of REFRESH_WINDOW, so sessions cached
together (a deploy, a warm-up) neither expire together nor make requests wait for the
database in a burst.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import random
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.connection import ASGIConnection

from api.auth import queries
from api.auth.identity import Caller
from api.platform.cache import BoundedCache
from api.platform.config import Settings
from api.platform.db.changes import listener
from api.platform.metrics import cache_counters

TOUCH_INTERVAL = timedelta(seconds=60)
CACHE_SECONDS = 55.0  # under TOUCH_INTERVAL: a busy session is re-read, and touched, each minute
REFRESH_WINDOW = (35.0, 50.0)  # seconds after caching; jittered so that reloads spread out
REFRESH_BATCH = 500
CACHE_LIMIT = 100_000
logger = logging.getLogger("api.auth.sessions")
_SESSION_HIT, _SESSION_MISS = cache_counters("sessions")

# (caller, monotonic time from which to refresh it, monotonic time after which not trusted)
_Entry = tuple[Caller, float, float]


class SessionCache:
    """Validated sessions by token, keyed by the raw cookie value (hashing it is the cost
    being saved). Bounded LRU; trusted only while change notices arrive."""

    def __init__(self) -> None:
        self._entries: BoundedCache[str, _Entry] = BoundedCache(CACHE_LIMIT)
        self.answers: BoundedCache[int, tuple[Caller, bytes]] = BoundedCache(CACHE_LIMIT)
        """Encoded answers about a session (api/auth/routes.py's session check), by session
        id, each valid only for the very `Caller` object it was encoded from."""
        self.generation = 0
        """Moves on every invalidation: sessions read across one are not kept."""
        self._due: dict[str, None] = {}  # tokens waiting for (or in) a background refresh
        self._refresher: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self.answers.clear()

    def get(self, token: str) -> Caller | None:
        caller, _ = self.lookup(token)
        return caller

    def lookup(self, token: str) -> tuple[Caller | None, bool]:
        """The cached caller, and whether it is due for a refresh ahead of its expiry."""
        if not listener.connected:
            _SESSION_MISS.inc()
            return None, False
        entry = self._entries.get(token)
        if entry is None:
            _SESSION_MISS.inc()
            return None, False
        caller, refresh_at, trusted_until = entry
        now = time.monotonic()
        if now < refresh_at:
            _SESSION_HIT.inc()
            return caller, False
        if now > trusted_until:
            self._entries.discard(token)
            _SESSION_MISS.inc()
            return None, False
        _SESSION_HIT.inc()
        return caller, True

    def put(self, token: str, caller: Caller, generation: int | None = None) -> None:
        if not listener.connected or (generation is not None and generation != self.generation):
            return
        now = time.monotonic()
        trusted_until = now + CACHE_SECONDS
        if caller.expires_at is not None:
            left = (caller.expires_at - datetime.now(UTC)).total_seconds()
            trusted_until = min(trusted_until, now + left)
        refresh_at = min(now + random.uniform(*REFRESH_WINDOW), trusted_until)
        self._entries.put(token, (caller, refresh_at, trusted_until))

    def refresh_soon(self, token: str, idle_minutes: int) -> None:
        """Queue `token` for the background refresher (one task, batched queries)."""
        if token in self._due:
            return
        self._due[token] = None
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_due(idle_minutes)
            )

    async def _refresh_due(self, idle_minutes: int) -> None:
        while self._due:
            batch = list(itertools.islice(self._due, REFRESH_BATCH))
            generation = self.generation
            try:
                found = await _read_sessions(batch, idle_minutes)
            except Exception:  # the entries simply expire, and requests then ask anew
                logger.warning("session refresh failed", exc_info=True)
                for token in batch:
                    self._due.pop(token, None)
                await asyncio.sleep(1.0)
                continue
            for token in batch:
                self._due.pop(token, None)
                caller = found.get(token)
                if generation != self.generation:
                    continue
                if caller is None:
                    self._entries.discard(token)
                else:
                    self.put(token, caller, generation)


session_cache = SessionCache()
listener.on("sessions_changed", session_cache.clear)


def cookie_name(settings: Settings) -> str:
    """`__Host-` prefixed whenever the cookie is Secure (https PUBLIC_URL)."""
    return "__Host-me_session" if settings.public_url_is_https else "me_session"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(token: str) -> str:
    return hashlib.sha256(b"csrf\x00" + token.encode()).hexdigest()


STREAM_KEY_LENGTH = 64


def stream_key_for(token: str) -> str:
    """The session's event-stream key: 256 bits derived one way from the session token, so
    it can be handed out again on every bulk answer without being stored; only its SHA-256
    is on the session row. Neither the session token nor the CSRF token (a different
    derivation of the token) can be computed from it."""
    return hashlib.sha256(b"event-stream\x00" + token.encode()).hexdigest()


async def stream_session(key: str, settings: Settings) -> Caller | None:
    """The live session an event-stream key belongs to (always asked of the database: a
    stream opens once, and must not outlive a logout another replica just saw)."""
    if len(key) != STREAM_KEY_LENGTH:
        return None
    row = await queries.stream_session(hash_token(key), settings.session_idle_minutes)
    if row is None:
        return None
    return Caller(
        user_id=row["user_id"],
        email=row["email"],
        is_super_admin=row["is_super_admin"],
        via="session",
        session_id=row["id"],
        expires_at=row["expires_at"],
    )


async def live_session_roles(session_ids: Iterable[int], settings: Settings) -> dict[int, bool]:
    """Which sessions still live, each with its user's super-admin flag, in one query."""
    return await queries.live_session_roles(list(session_ids), settings.session_idle_minutes)


async def _read_sessions(tokens: Iterable[str], idle_minutes: int) -> dict[str, Caller]:
    """The live sessions among `tokens`, by token, in one query; touches `last_seen_at`
    (one statement) for those not seen for TOUCH_INTERVAL."""
    by_hash = {hash_token(token): token for token in tokens}
    rows = await queries.live_sessions(list(by_hash), idle_minutes)
    now = datetime.now(UTC)
    stale = [row["id"] for row in rows if now - row["last_seen_at"] > TOUCH_INTERVAL]
    if stale:
        await queries.touch_sessions(stale, TOUCH_INTERVAL)
    found = {}
    for row in rows:
        token = by_hash[row["token_hash"]]
        found[token] = Caller(
            user_id=row["user_id"],
            email=row["email"],
            is_super_admin=row["is_super_admin"],
            via="session",
            session_id=row["id"],
            csrf_token=csrf_token_for(token),
            expires_at=row["expires_at"],
            stream_key=stream_key_for(token) if row["has_stream_key"] else None,
        )
    return found


async def load_session(token: str, settings: Settings, *, live: bool = False) -> Caller | None:
    """The live session for `token`, or None if unknown, expired, idle too long or inactive.
    `live` asks the database even when this process has the session cached."""
    cached, due = (None, False) if live else session_cache.lookup(token)
    if cached is not None:
        if due:
            session_cache.refresh_soon(token, settings.session_idle_minutes)
        return cached
    generation = session_cache.generation
    caller = (await _read_sessions((token,), settings.session_idle_minutes)).get(token)
    if caller is not None:
        session_cache.put(token, caller, generation)
    return caller


async def session_id_token(token: str) -> str | None:
    """The ID token kept with the session, used as `id_token_hint` at the provider's logout."""
    return await queries.session_id_token(hash_token(token))


def _session_cookie(connection: ASGIConnection[Any, Any, Any, Any], name: str) -> str | None:
    """The session cookie's value, read from the raw header: parsing every cookie into a dict
    (Litestar's `connection.cookies`, an LRU that 5,000 rotating users only churn) is most of
    the cost of a cached session lookup. As there, the last of repeated cookies wins; values
    needing unquoting take Litestar's path."""
    prefix = name.encode() + b"="
    found: bytes | None = None
    for key, value in connection.scope["headers"]:
        if key == b"cookie":
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(prefix):
                    found = part[len(prefix) :]
    if found is None:
        return None
    if b"%" in found or b'"' in found:
        return connection.cookies.get(name)
    return found.decode("latin-1")


async def caller_from_cookie(
    connection: ASGIConnection[Any, Any, Any, Any], settings: Settings, *, live: bool = False
) -> Caller | None:
    token = _session_cookie(connection, cookie_name(settings))
    if not token or len(token) > 128:
        return None
    return await load_session(token, settings, live=live)
