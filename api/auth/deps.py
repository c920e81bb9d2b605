"""How a handler gets its caller: the `caller` dependency.

Who may call a route is declared by guards (api/auth/guards.py), which run before the
body is parsed; the dependency then hands the handler the caller the guard identified
(cached on the request). `authenticated` is the same rule as a plain call, for the
hottest handlers, which skip guards and dependency resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import Provide

from api.auth.guards import authenticated, check_csrf
from api.auth.identification import identify, identify_service
from api.auth.identity import Caller, ServiceCaller
from api.platform.http.errors import Forbidden, NotAuthenticated


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """The signed-in caller (else 401); unsafe methods must pass the CSRF rule (else 403)."""
    return await authenticated(request)


async def provide_super_admin(request: Request[Any, Any, Any]) -> Caller:
    """`provide_caller`, and the caller must be a super-admin (else 403)."""
    caller = await authenticated(request)
    if not caller.is_super_admin:
        raise Forbidden("Super-admins only")
    return caller


@dataclass(frozen=True, slots=True)
class UserOrService:
    """A signed-in person, else a machine client (one type: Litestar checks dependencies)."""

    user: Caller | None
    service: ServiceCaller | None = None


async def provide_user_or_service(request: Request[Any, Any, Any]) -> UserOrService:
    """`provide_caller`, or else a machine client's bearer token (OFREP serves both)."""
    caller = await identify(request)
    if caller is not None:
        check_csrf(request, caller)
        return UserOrService(caller)
    service = await identify_service(request)
    if service is None:
        raise NotAuthenticated("A session or a bearer token is required")
    return UserOrService(None, service)


CALLER = {"caller": Provide(provide_caller)}
SUPER_ADMIN = {"caller": Provide(provide_super_admin)}
USER_OR_SERVICE = {"caller": Provide(provide_user_or_service)}
