"""Bearer access tokens of API clients, verified locally against the cached JWKS (F5).

A token for a person maps to that active user by (issuer, subject). A token a machine
client obtained for itself (client credentials) identifies a service, and only one that
SERVICE_CLIENT_IDS lists: its scopes are those the token grants (`scope`, space-separated,
and Auth0's `permissions` list) that the list allows it. Anything else is no caller (401).

Which tokens are a client's own: the client is named by `client_id` (RFC 9068) or `azp`
(Auth0), both the same when both are present, and the subject is that client — `sub` is
`<client>@clients` (Auth0) or the client id itself (RFC 9068 §2.2) — or `gty` is
`client-credentials` (Auth0). A `sub` ending in `@clients` that names another client, or no
client at all, is refused rather than taken for a person.
"""

from __future__ import annotations

import logging
from typing import Any

from api.auth import queries
from api.auth.identity import Caller, ServiceCaller
from api.auth.oidc import ProviderUnavailable, TokenRejected, provider_for
from api.auth.rules import SUBJECT_MAX, storable_text
from api.platform.config import Settings

logger = logging.getLogger("api.auth.bearer")

MAX_TOKEN_CHARS = 8192
MACHINE_SUFFIX = "@clients"


def token_client(claims: dict[str, Any]) -> str | None:
    """The client a token was issued to, from `client_id` / `azp` (None if neither)."""
    named = [value for value in (claims.get("client_id"), claims.get("azp")) if value is not None]
    if not all(isinstance(value, str) and value for value in named):
        raise TokenRejected("malformed_client", "The token's client is not a string")
    if len(set(named)) > 1:
        raise TokenRejected("client_mismatch", "`client_id` and `azp` name different clients")
    return named[0] if named else None


def machine_client(claims: dict[str, Any]) -> str | None:
    """The client whose own token this is, or None for a person's token."""
    subject: str = claims["sub"]
    client = token_client(claims)
    if client is not None and subject in (client, f"{client}{MACHINE_SUFFIX}"):
        return client
    if subject.endswith(MACHINE_SUFFIX) or claims.get("gty") == "client-credentials":
        raise TokenRejected("client_mismatch", "A client's own token must name that client")
    return None


def granted_scopes(claims: dict[str, Any]) -> frozenset[str]:
    """`scope` (space-separated, RFC 8693 §4.2) and `permissions` (Auth0 RBAC), together."""
    scope, permissions = claims.get("scope", ""), claims.get("permissions", [])
    if not isinstance(scope, str):
        raise TokenRejected("malformed_scope", "The token's `scope` is not a string")
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise TokenRejected("malformed_scope", "The token's `permissions` is not a list of strings")
    return (frozenset(scope.split(" ")) | frozenset(permissions)) - {""}


def _person_subject(claims: dict[str, Any]) -> str:
    """A person's `sub`, if it can be the stored one: never a query Postgres refuses."""
    subject: str = claims["sub"]
    if len(subject) > SUBJECT_MAX or not storable_text(subject):
        raise TokenRejected("malformed_sub", "The token's subject cannot be a user's")
    return subject


def service_caller(client: str, claims: dict[str, Any], settings: Settings) -> ServiceCaller:
    allowed = settings.service_clients.get(client)
    if allowed is None:
        raise TokenRejected("unknown_client", "The client is not in SERVICE_CLIENT_IDS")
    return ServiceCaller(client_id=client, scopes=granted_scopes(claims) & allowed)


async def caller_from_bearer(token: str, settings: Settings) -> Caller | ServiceCaller | None:
    if settings.oidc_audience is None or len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        claims = await provider_for(settings).validate_access_token(token)
        client = machine_client(claims)
        if client is not None:
            return service_caller(client, claims, settings)
        subject = _person_subject(claims)
    except TokenRejected as exc:
        logger.info("bearer token refused: %s", exc.reason)
        return None
    except ProviderUnavailable:
        return None
    row = await queries.active_user_by_subject(settings.oidc_issuer, subject)
    if row is None:
        return None
    return Caller(row["id"], row["email"], row["is_super_admin"], via="bearer")
