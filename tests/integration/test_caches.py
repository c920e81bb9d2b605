"""Per-process caches (sessions, evaluated flags, /me): correct without the change
listener, bounded with 100,000 users, and no database write per read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api.auth.identity import Caller
from api.auth.sessions import CACHE_LIMIT, hash_token, load_session, session_cache
from api.flags import store
from api.flags.store import RESULT_LIMIT, FlagResults, flag_cache
from api.hierarchy.me_cache import ME_LIMIT, me_cache
from api.platform.config import get_settings
from api.platform.db.changes import listener
from api.platform.db.sql import fetch
from tests.support.auth import sign_in

USERS = 100_000


@pytest.fixture(name="listening")
def fx_listening() -> Iterator[None]:
    """Pretend change notices arrive, so the caches fill; empty them afterwards."""
    listener.connected = True
    yield
    listener.connected = False
    session_cache.clear()
    flag_cache.invalidate()
    me_cache.changed(None)


async def test_a_caller_during_the_reload_after_a_change_waits_for_the_new_definitions(
    listening: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by bench.streams: the fan-out's concurrent evaluations after a change notice
    were served the replaced definitions while the first one reloaded them."""
    versions = iter(["old", "new"])
    loading, release = asyncio.Event(), asyncio.Event()

    async def load_definitions() -> dict[str, Any]:
        version = next(versions)
        if version == "new":
            loading.set()
            await release.wait()
        return {version: None}

    monkeypatch.setattr(store, "load_definitions", load_definitions)
    flag_cache.invalidate()
    assert await flag_cache.flags() == {"old": None}
    flag_cache.invalidate()  # a change notice
    first = asyncio.create_task(flag_cache.flags())
    await loading.wait()
    second = asyncio.create_task(flag_cache.flags())
    await asyncio.sleep(0.01)
    assert not second.done()
    release.set()
    assert await first == await second == {"new": None}
    assert await flag_cache.flags() == {"new": None}  # loaded once, not again


def test_caches_stay_bounded_with_100k_distinct_users(listening: None) -> None:
    expires = datetime(2100, 1, 1, tzinfo=UTC)
    for user in range(USERS + 5):
        caller = Caller(user, f"u{user}@example.test", False, "session", user, "csrf", expires)
        session_cache.put(f"token-{user}", caller)
        session_cache.answers.put(user, (caller, b"{}"))
        flag_cache.keep_results(
            user, None, FlagResults(1e12, b"", b"", b"", b"[]"), flag_cache.generation
        )
        me_cache.put(caller, 1e12, b"{}", me_cache.generation)
    assert len(session_cache) == CACHE_LIMIT <= USERS
    assert len(session_cache.answers) == CACHE_LIMIT
    assert len(flag_cache.results) == RESULT_LIMIT <= USERS
    assert len(me_cache.entries) == ME_LIMIT <= USERS
    # The most recent users are the ones kept.
    assert session_cache.get(f"token-{USERS + 4}") is not None
    assert session_cache.get("token-0") is None


async def test_without_the_listener_every_request_sees_the_database(
    client: httpx.AsyncClient,
) -> None:
    assert not listener.connected
    user = await sign_in()
    client.cookies.update(user.cookies)
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    assert (await client.get("/api/v1/auth/session/check")).status_code == 200
    await fetch("UPDATE users SET name = 'Renamed at once' WHERE id = $1", user.user_id)
    assert (await client.get("/api/v1/auth/me")).json()["name"] == "Renamed at once"
    await fetch("DELETE FROM user_sessions WHERE user_id = $1", user.user_id)
    assert (await client.get("/api/v1/auth/session/check")).status_code == 401
    assert len(session_cache) == 0
    assert len(me_cache.entries) == 0


async def touches(token: str) -> tuple[datetime, int]:
    rows = await fetch(
        "SELECT last_seen_at, xmin::text::bigint AS version FROM user_sessions"
        " WHERE token_hash = $1",
        hash_token(token),
    )
    return rows[0]["last_seen_at"], rows[0]["version"]


async def test_reading_a_session_writes_last_seen_at_at_most_once_a_minute(
    client: httpx.AsyncClient,
) -> None:
    assert not listener.connected  # the uncached path: every request reads the session row
    user = await sign_in()
    client.cookies.update(user.cookies)
    await fetch(
        "UPDATE user_sessions SET last_seen_at = now() - interval '30 seconds'"
        " WHERE token_hash = $1",
        hash_token(user.token),
    )
    before = await touches(user.token)
    for _ in range(20):
        assert (await client.get("/api/v1/auth/session/check")).status_code == 200
    assert await touches(user.token) == before  # seen 30 s ago: no write at all
    await fetch(
        "UPDATE user_sessions SET last_seen_at = now() - interval '90 seconds'"
        " WHERE token_hash = $1",
        hash_token(user.token),
    )
    stale = await touches(user.token)
    assert (await client.get("/api/v1/auth/session/check")).status_code == 200
    touched = await touches(user.token)
    assert touched[0] > stale[0]
    assert touched[1] != stale[1]
    for _ in range(20):
        assert (await client.get("/api/v1/features")).status_code == 200
        assert (await client.get("/api/v1/auth/session/check")).status_code == 200
    assert await touches(user.token) == touched  # one write for the minute, not one per read


def make_due(token: str) -> None:
    """Move a cached session's refresh time into the past (it stays trusted)."""
    entry = session_cache._entries.get(token)
    assert entry is not None
    session_cache._entries.put(token, (entry[0], 0.0, entry[2]))


async def refreshed() -> None:
    refresher = session_cache._refresher
    assert refresher is not None
    await refresher


async def test_a_busy_session_is_refreshed_in_the_background_before_it_expires(
    listening: None,
) -> None:
    user = await sign_in()
    settings = get_settings()
    first = await load_session(user.token, settings)
    assert first is not None
    make_due(user.token)
    await fetch(
        "UPDATE user_sessions SET last_seen_at = now() - interval '90 seconds'"
        " WHERE token_hash = $1",
        hash_token(user.token),
    )
    stale = await touches(user.token)
    # The request is answered from the cache at once; the re-read happens behind it.
    assert await load_session(user.token, settings) is first
    await refreshed()
    again = await load_session(user.token, settings)
    assert again is not None
    assert again is not first
    assert again.user_id == user.user_id
    assert (await touches(user.token))[0] > stale[0]  # the refresh touched last_seen_at


async def test_a_session_gone_from_the_database_is_dropped_at_its_refresh(
    listening: None,
) -> None:
    user = await sign_in()
    settings = get_settings()
    assert await load_session(user.token, settings) is not None
    await fetch("DELETE FROM user_sessions WHERE token_hash = $1", hash_token(user.token))
    make_due(user.token)
    await load_session(user.token, settings)
    await refreshed()
    assert session_cache.get(user.token) is None
    assert await load_session(user.token, settings) is None


def test_sessions_cached_together_are_due_for_refresh_at_different_times(
    listening: None,
) -> None:
    expires = datetime(2100, 1, 1, tzinfo=UTC)
    for user in range(100):
        caller = Caller(user, None, False, "session", user, "csrf", expires)
        session_cache.put(f"token-{user}", caller)
    due = {session_cache._entries.get(f"token-{user}")[1] for user in range(100)}  # type: ignore[index]
    assert len(due) == 100
    assert max(due) - min(due) > 5.0
