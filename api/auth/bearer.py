"""Bearer access tokens of API clients, verified locally against the cached JWKS (F5).

A token for a person maps to that active user by (issuer, subject); a token a machine
client obtained for itself (Auth0 client credentials) identifies a service.
"""

from __future__ import annotations

from api.auth.identity import Caller, ServiceCaller
from api.auth.oidc import ProviderUnavailable, TokenRejected, provider_for
from api.platform.config import Settings
from tables.users import User


def _is_machine_token(claims: dict[str, object]) -> bool:
    subject = str(claims.get("sub", ""))
    return claims.get("gty") == "client-credentials" or subject.endswith("@clients")


async def caller_from_bearer(token: str, settings: Settings) -> Caller | ServiceCaller | None:
    if settings.oidc_audience is None or len(token) > 8192:
        return None
    try:
        claims = await provider_for(settings).validate_access_token(token)
    except (TokenRejected, ProviderUnavailable):
        return None
    if _is_machine_token(claims):
        client_id = claims.get("azp") or claims.get("client_id") or claims["sub"]
        return ServiceCaller(client_id=str(client_id))
    row = (
        await User.select(User.id, User.email, User.is_super_admin)
        .where(
            User.oidc_issuer == settings.oidc_issuer,
            User.oidc_subject == claims["sub"],
            User.is_active.eq(True),
        )
        .first()
    )
    if row is None:
        return None
    return Caller(row["id"], row["email"], row["is_super_admin"], via="bearer")
