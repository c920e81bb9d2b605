"""Bearer access tokens of API clients, verified locally against the cached JWKS (F5).

A token for a person maps to that active user by (issuer, subject); a token a machine
client obtained for itself (Auth0 client credentials) identifies a service.
"""

from __future__ import annotations

from api.auth.identity import Caller, ServiceCaller
from api.auth.oidc import ProviderUnavailable, TokenRejected, provider_for
from api.db import fetch
from api.settings import Settings


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
    rows = await fetch(
        "SELECT id, email, is_super_admin FROM users"
        " WHERE oidc_issuer = $1 AND oidc_subject = $2 AND is_active",
        settings.oidc_issuer,
        claims["sub"],
    )
    if not rows:
        return None
    row = rows[0]
    return Caller(row["id"], row["email"], row["is_super_admin"], via="bearer")
