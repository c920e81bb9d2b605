"""Who may call a route, declared where routes are grouped; the only places that reject a
caller (401, 403, CSRF).

Every route declares its access, deny by default (`undeclared_routes`, checked when the app
is built and by tests/integration/test_route_access.py):
- a guard (`signed_in`, `user_or_service`, `super_admin`) on the router, controller or
  handler. Litestar runs guards before the schema gate's `before_request`, before any
  parameter or body is parsed, so a caller without access gets 401/403, never a 400/422
  about a body they may not send;
- or the marker `opt=PUBLIC` (anyone), or `opt=declared(Access.x)` on the few hot routes
  that apply the same rule as a call (`authenticated()`): a guard costs each request a copy
  of the handler (litestar 2.25 `authorize_connection`), measured in the README.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterable
from enum import IntEnum
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from api.auth.identification import identify, identify_service
from api.auth.identity import Caller
from api.platform.config import settings_of
from api.platform.db.readiness import schema_gate
from api.platform.http.errors import Forbidden, NotAuthenticated

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_CSRF_HEADER = "X-CSRF-Token"
ACCESS = "access"
"""The `opt` key of a route's declared access."""


class Access(IntEnum):
    """Who may call a route, from the widest to the narrowest."""

    public = 0
    user_or_service = 1
    """A signed-in person, or a machine client's bearer token (OFREP)."""
    signed_in = 2
    """A session or a person's bearer token; per-node permissions are the service's."""
    super_admin = 3


def declared(access: Access) -> dict[str, Access]:
    """`opt` for a route that applies `access` itself (hot routes, the admin mount)."""
    return {ACCESS: access}


PUBLIC = declared(Access.public)


def check_csrf(
    connection: ASGIConnection[Any, Any, Any, Any],
    caller: Caller,
    *,
    header: str = API_CSRF_HEADER,
    allowed_origins: Collection[str] | None = None,
) -> None:
    """The one CSRF rule (PRODUCT §4), for the API and the admin mount alike: an unsafe
    request riding a session cookie needs the session's CSRF token in `header` and an
    `Origin` in `allowed_origins` (default: PUBLIC_URL's origin and the front ends)."""
    if caller.via != "session" or connection.scope.get("method") not in UNSAFE_METHODS:
        return
    sent, origin = _first_headers(connection, header.lower().encode(), b"origin")
    if not caller.csrf_token or not hmac.compare_digest(sent or b"", caller.csrf_token.encode()):
        raise Forbidden(f"Missing or wrong {header} header", extra={"reason": "csrf_token"})
    if allowed_origins is None:
        allowed_origins = settings_of(connection).allowed_origins
    if origin is None or origin.decode("latin-1") not in allowed_origins:
        raise Forbidden("Request origin is not allowed", extra={"reason": "csrf_origin"})


def _first_headers(
    connection: ASGIConnection[Any, Any, Any, Any], token_name: bytes, origin_name: bytes
) -> tuple[bytes | None, bytes | None]:
    """The first value of each of two headers, from the raw (lower-cased) ones: building
    Litestar's header multidict for two lookups was a twentieth of an OFREP bulk request."""
    token: bytes | None = None
    origin: bytes | None = None
    for name, value in connection.scope["headers"]:
        if name == token_name and token is None:
            token = value
        elif name == origin_name and origin is None:
            origin = value
    return token, origin


async def authenticated(
    connection: ASGIConnection[Any, Any, Any, Any], *, live: bool = False
) -> Caller:
    """The caller rule: signed in (else 401), unsafe methods pass CSRF (else 403). Behind the
    guards and the `caller` dependency, and called directly by the hottest handlers.
    `live` reads the session from the database, not this process's cache."""
    caller = await identify(connection, live=live)
    if caller is None:
        raise NotAuthenticated("Sign in first")
    check_csrf(connection, caller)
    return caller


def _preflight(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """OPTIONS answers only which methods exist (CORS preflights never get this far)."""
    return connection.scope.get("method") == "OPTIONS"


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a signed-in person (401), CSRF on unsafe methods (403)."""
    if _preflight(connection):
        return
    await schema_gate.ensure_ready()  # guards run before the gate: 503 before any session
    await authenticated(connection)


async def super_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a super-admin (401 / 403), checked against the live session row, so demotion,
    deactivation and logout end admin access at once whichever process wrote them."""
    if _preflight(connection):
        return
    await schema_gate.ensure_ready()
    caller = await authenticated(connection, live=True)
    if not caller.is_super_admin:
        raise Forbidden("Super-admins only")


async def user_or_service(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: a signed-in person (CSRF as ever), or else a machine client's bearer token."""
    if _preflight(connection):
        return
    await schema_gate.ensure_ready()
    caller = await identify(connection)
    if caller is not None:
        check_csrf(connection, caller)
    elif await identify_service(connection) is None:
        raise NotAuthenticated("A session or a bearer token is required")


ACCESS_GUARDS = {
    signed_in: Access.signed_in,
    super_admin: Access.super_admin,
    user_or_service: Access.user_or_service,
}


def access_of(handler: BaseRouteHandler) -> Access | None:
    """The narrowest access a route declares (by guard or by marker), None if it declares
    none. Litestar's OPTIONS handlers inherit their path's layers and answer anyone."""
    levels = [ACCESS_GUARDS[g] for g in handler.resolve_guards() if g in ACCESS_GUARDS]
    marker = (handler.opt or {}).get(ACCESS)
    if isinstance(marker, Access):
        levels.append(marker)
    return max(levels) if levels else None


def undeclared_routes(routes: Iterable[Any]) -> list[str]:
    """ "METHOD path" of every route handler that declares no access (deny by default)."""
    missing: list[str] = []
    for route in routes:
        handlers = getattr(route, "route_handlers", None) or [route.route_handler]
        for handler in handlers:
            methods = sorted(getattr(handler, "http_methods", None) or {"ASGI"})
            if methods == ["OPTIONS"] or access_of(handler) is not None:
                continue
            missing += [f"{method} {route.path}" for method in methods]
    return missing
