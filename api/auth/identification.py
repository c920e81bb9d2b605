"""The caller of a request, identified lazily from its session cookie (or bearer token).

Identification never rejects; guards do. It runs only when a guard or handler asks, so
public routes such as /health never touch the database.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from api.auth.bearer import caller_from_bearer
from api.auth.identity import Caller, ServiceCaller
from api.auth.sessions import caller_from_cookie
from api.platform.config import settings_of

_CALLER_KEY = "caller"
_SERVICE_KEY = "service_caller"
_LIVE_KEY = "caller_is_live"
_UNSET = object()


async def identify(
    connection: ASGIConnection[Any, Any, Any, Any], *, live: bool = False
) -> Caller | None:
    """The request's caller, looked up once per request and cached on its state. `live`
    reads the session row afresh (the super-admin checks: the admin is not a hot path, and
    access then ends with the row, whichever process changed it)."""
    state = connection.scope.setdefault("state", {})
    cached = state.get(_CALLER_KEY, _UNSET)
    if cached is not _UNSET and (not live or state.get(_LIVE_KEY)):
        return cached  # type: ignore[no-any-return]
    settings = settings_of(connection)
    caller: Caller | None = None
    # The raw header, not `connection.headers`: building that mapping costs more than the
    # whole cached session lookup that usually follows.
    authorization = next(
        (v.decode("latin-1") for k, v in connection.scope["headers"] if k == b"authorization"), ""
    )
    if authorization[:7].lower() == "bearer ":
        found = await caller_from_bearer(authorization[7:].strip(), settings)
        if isinstance(found, ServiceCaller):
            state[_SERVICE_KEY] = found
        else:
            caller = found
    else:
        caller = await caller_from_cookie(connection, settings, live=live)
    state[_CALLER_KEY] = caller
    state[_LIVE_KEY] = live
    return caller


async def identify_service(connection: ASGIConnection[Any, Any, Any, Any]) -> ServiceCaller | None:
    """The machine client behind the request's bearer token, if that is what it carries."""
    await identify(connection)
    service: ServiceCaller | None = connection.scope["state"].get(_SERVICE_KEY)
    return service
