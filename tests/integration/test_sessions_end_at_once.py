"""Logout, demotion and deactivation hold on the writer's own process at once, under load.

The listener is marked connected, so the session cache is trusted, yet no LISTEN
connection runs here: the only thing that can clear the cache is the write's own
announcement (`sessions_changed` inside `change_transaction`), applied before it answers.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from api.auth.sessions import session_cache
from api.platform.db.changes import listener
from api.platform.db.sql import fetch
from tests.support.auth import SignedIn, sign_in

ORIGIN = "http://127.0.0.1:8000"
ROUNDS = 200


@pytest.fixture(name="cached_under_load")
def fx_cached_under_load() -> Iterator[None]:
    """The session cache in use, and two busy processes competing for the CPU."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    listener.connected = True
    session_cache.clear()
    try:
        yield
    finally:
        listener.connected = False
        session_cache.clear()
        for process in busy:
            process.kill()
            process.wait()


async def _cached(client: httpx.AsyncClient, person: SignedIn) -> None:
    answer = await client.get("/api/v1/auth/session/check", cookies=person.cookies)
    assert answer.status_code == 200
    assert session_cache.get(person.token) is not None  # what a stale answer would come from


async def test_after_logout_the_next_request_is_401_every_time(
    client: httpx.AsyncClient, cached_under_load: None
) -> None:
    for _ in range(ROUNDS):
        person = await sign_in()
        await _cached(client, person)
        out = await client.post(
            "/api/v1/auth/logout", cookies=person.cookies, headers=person.headers(ORIGIN)
        )
        assert out.status_code == 200
        check = await client.get("/api/v1/auth/session/check", cookies=person.cookies)
        assert check.status_code == 401
        assert (await client.get("/api/v1/features", cookies=person.cookies)).status_code == 401


async def test_after_demotion_admin_access_ends_at_once(
    client: httpx.AsyncClient, cached_under_load: None
) -> None:
    boss = await sign_in(super_admin=True)
    for _ in range(ROUNDS):
        admin = await sign_in(super_admin=True)
        await _cached(client, admin)
        assert (
            await client.get("/api/v1/admin/segments", cookies=admin.cookies)
        ).status_code == 200
        demoted = await client.patch(
            f"/api/v1/users/{admin.user_id}",
            json={"is_super_admin": False},
            cookies=boss.cookies,
            headers=boss.headers(ORIGIN),
        )
        assert demoted.status_code == 200, demoted.text
        check = await client.get("/api/v1/auth/session/check", cookies=admin.cookies)
        assert check.json()["is_super_admin"] is False  # the cached session was dropped
        assert (
            await client.get("/api/v1/admin/segments", cookies=admin.cookies)
        ).status_code == 403
        assert (await client.get("/admin/api/tables/", cookies=admin.cookies)).status_code == 403
        assert (await client.get("/admin/", cookies=admin.cookies)).status_code == 403


@pytest.mark.parametrize("writer", ["api", "admin"])
async def test_after_deactivation_the_next_request_is_401_every_time(
    client: httpx.AsyncClient, cached_under_load: None, writer: str
) -> None:
    boss = await sign_in(super_admin=True)
    for _ in range(ROUNDS):
        person = await sign_in()
        await _cached(client, person)
        if writer == "api":
            done = await client.patch(
                f"/api/v1/users/{person.user_id}",
                json={"is_active": False},
                cookies=boss.cookies,
                headers=boss.headers(ORIGIN),
            )
        else:
            rows = await fetch("SELECT version FROM users WHERE id = $1", person.user_id)
            done = await client.patch(
                f"/admin/api/tables/users/{person.user_id}/",
                json={"is_active": False, "version": rows[0]["version"]},
                cookies=boss.cookies,
                headers={**boss.headers(ORIGIN), "X-CSRFToken": boss.csrf_token},
            )
        assert done.status_code == 200, done.text
        check = await client.get("/api/v1/auth/session/check", cookies=person.cookies)
        assert check.status_code == 401
        assert (await client.get("/api/v1/auth/me", cookies=person.cookies)).status_code == 401
