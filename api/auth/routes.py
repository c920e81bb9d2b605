"""The auth endpoints of PRODUCT §4."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response, get

from api.auth.identity import identify


class SessionCheck(msgspec.Struct, omit_defaults=True):
    authenticated: bool
    user_id: int | None = None
    email: str | None = None
    is_super_admin: bool | None = None
    expires_at: datetime | None = None
    csrf_token: str | None = None


@get("/api/v1/auth/session/check", tags=["auth"], operation_id="sessionCheck")
async def session_check(request: Request[Any, Any, Any]) -> Response[SessionCheck]:
    """Who is signed in, and the CSRF token the front end must echo on unsafe requests."""
    caller = await identify(request)
    if caller is None or caller.via != "session":
        return Response(SessionCheck(authenticated=False), status_code=401)
    return Response(
        SessionCheck(
            authenticated=True,
            user_id=caller.user_id,
            email=caller.email,
            is_super_admin=caller.is_super_admin,
            expires_at=caller.expires_at,
            csrf_token=caller.csrf_token,
        ),
        headers={"Cache-Control": "no-store"},
    )
