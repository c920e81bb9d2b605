"""Guards: the only places that reject a caller (401, 403, CSRF)."""

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Any

from litestar.connection import ASGIConnection

from api.auth.identification import identify
from api.auth.identity import Caller
from api.platform.config import settings_of
from api.platform.http.errors import Forbidden, NotAuthenticated

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"


def check_csrf(
    connection: ASGIConnection[Any, Any, Any, Any],
    caller: Caller,
    *,
    header: str = CSRF_HEADER,
    allowed_origins: Collection[str] | None = None,
) -> None:
    """The one CSRF rule (PRODUCT §4), for the API and the admin mount alike: an unsafe
    request riding a session cookie needs the session's CSRF token in `header` and an
    `Origin` in `allowed_origins` (default: PUBLIC_URL's origin and the front ends)."""
    if caller.via != "session" or connection.scope.get("method") not in UNSAFE_METHODS:
        return
    sent = connection.headers.get(header, "").encode()
    if not caller.csrf_token or not hmac.compare_digest(sent, caller.csrf_token.encode()):
        raise Forbidden(f"Missing or wrong {header} header", extra={"reason": "csrf_token"})
    if allowed_origins is None:
        allowed_origins = settings_of(connection).allowed_origins
    origin = connection.headers.get("origin")
    if origin is None or origin not in allowed_origins:
        raise Forbidden("Request origin is not allowed", extra={"reason": "csrf_origin"})


async def authenticated(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The caller rule: signed in (else 401), unsafe methods pass CSRF (else 403). Behind the
    `caller` dependency (api.auth.deps), and called directly by the hottest handlers."""
    caller = await identify(connection)
    if caller is None:
        raise NotAuthenticated("Sign in first")
    check_csrf(connection, caller)
    return caller
