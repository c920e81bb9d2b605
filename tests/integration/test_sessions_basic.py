"""Session check: 401 when anonymous, the caller and a CSRF token when signed in."""

from __future__ import annotations

import httpx

from api.auth.service import end_user_sessions
from tests.support.auth import sign_in


async def test_anonymous_session_check_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/session/check")
    assert response.status_code == 401
    assert response.json() == {"authenticated": False}


async def test_signed_in_session_check_names_the_user(client: httpx.AsyncClient) -> None:
    signed_in = await sign_in()
    response = await client.get("/api/v1/auth/session/check", cookies=signed_in.cookies)
    assert response.status_code == 200
    body = response.json()
    assert body["authenticated"] is True
    assert body["user_id"] == signed_in.user_id
    assert body["csrf_token"] == signed_in.csrf_token


async def test_ended_sessions_are_refused_at_once(client: httpx.AsyncClient) -> None:
    signed_in = await sign_in()
    await end_user_sessions(signed_in.user_id)
    response = await client.get("/api/v1/auth/session/check", cookies=signed_in.cookies)
    assert response.status_code == 401
