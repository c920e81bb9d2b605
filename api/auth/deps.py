"""The one way a handler gets its caller: the `caller` dependency.

Dependencies resolve after the `before_request` hooks, so the schema gate answers 503
before anything reads a session. `authenticated` is the same rule as a plain call, for the
hottest handlers, which skip dependency resolution.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import Provide

from api.auth.guards import authenticated
from api.auth.identity import Caller
from api.errors import Forbidden


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """The signed-in caller (else 401); unsafe methods must pass the CSRF rule (else 403)."""
    return await authenticated(request)


async def provide_super_admin(request: Request[Any, Any, Any]) -> Caller:
    """`provide_caller`, and the caller must be a super-admin (else 403)."""
    caller = await authenticated(request)
    if not caller.is_super_admin:
        raise Forbidden("Super-admins only")
    return caller


CALLER = {"caller": Provide(provide_caller)}
SUPER_ADMIN = {"caller": Provide(provide_super_admin)}
