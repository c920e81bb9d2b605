"""The browser login: authorization-code flow with PKCE S256, single-use state, nonce.

`state` is bound to the browser by a short-lived SameSite=Lax pre-login cookie; the server
keeps only hashes of both, and the callback consumes the row with one DELETE, so a state
(and with it the code) can be used once. Nothing is written for a login that fails.

Every failure is a `LoginFailed` (401, `extra.reason`): a callback whose query carries
control characters (NUL included), and claims that do not fit where they are kept
(`api.auth.rules`), are refused like a bad token, never cut to fit.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api.auth import service
from api.auth.oidc import OidcProvider, ProviderUnavailable, TokenRejected
from api.auth.rules import NAME_CLAIMS, ClaimRefused, Identity, read_identity, storable_text
from api.auth.service import StartedSession
from api.platform.config import Settings
from api.platform.http.errors import AppError, BadRequest, UpstreamUnavailable

USERINFO_PROFILE_CLAIMS = ("email", "email_verified", "name", "given_name", "family_name")
PROVIDER_ERROR = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,100}")
"""An `error` code as RFC 6749 §4.1.2.1 spells them, short enough to repeat whole."""
MAX_AUTH_TIME = 2**53


class LoginFailed(AppError):
    status_code, code = 401, "login_failed"


def prelogin_cookie_name(settings: Settings) -> str:
    return "__Host-me_login" if settings.public_url_is_https else "me_login"


def safe_next(value: str | None, settings: Settings) -> str:
    """A relative path on this site, or a URL on an allowed front-end origin; else 400."""
    if not value:
        return "/"
    if len(value) > 2000 or "\\" in value or not value.isprintable() or value != value.strip():
        raise BadRequest("`next` is not an acceptable redirect target", extra={"field": "next"})
    parts = urlsplit(value)
    if (
        not parts.scheme
        and not parts.netloc
        and value.startswith("/")
        and not value.startswith("//")
    ):
        return value
    if parts.scheme in ("http", "https") and parts.netloc:
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin in settings.allowed_origins and not parts.username and not parts.password:
            return value
    raise BadRequest("`next` must be a relative path or an allowed origin", extra={"field": "next"})


@dataclass(frozen=True, slots=True)
class LoginStart:
    authorization_url: str
    browser_binding: str


async def begin_login(provider: OidcProvider, next_url: str) -> LoginStart:
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    code_verifier = secrets.token_urlsafe(64)
    binding = secrets.token_urlsafe(32)
    try:
        url = await provider.authorization_url(
            state=state, nonce=nonce, code_verifier=code_verifier
        )
    except ProviderUnavailable as exc:
        raise UpstreamUnavailable(
            "The identity provider is unreachable; retry shortly", extra={"reason": str(exc)}
        ) from exc
    await service.save_login_state(
        state=state,
        browser_binding=binding,
        nonce=nonce,
        code_verifier=code_verifier,
        next_url=next_url,
    )
    return LoginStart(url, binding)


@dataclass(frozen=True, slots=True)
class LoginResult:
    session: StartedSession
    next_url: str
    user_id: int
    is_super_admin: bool


def _fail(reason: str, detail: str) -> LoginFailed:
    return LoginFailed(detail, extra={"reason": reason})


async def complete_login(
    provider: OidcProvider,
    settings: Settings,
    params: dict[str, str],
    browser_binding: str | None,
    *,
    client_ip: str | None,
    user_agent: str | None,
) -> LoginResult:
    if any(not storable_text(value) for value in params.values()):
        raise _fail("callback_malformed", "The callback's query carries control characters")
    if "error" in params:
        error = params["error"]
        said = f": {error}" if PROVIDER_ERROR.fullmatch(error) else " with an error"
        raise _fail("provider_error", f"The provider answered{said}")
    state, code = params.get("state"), params.get("code")
    if not state:
        raise _fail("state_missing", "The callback carries no state")
    if not code:
        raise _fail("code_missing", "The callback carries no authorization code")
    if not browser_binding:
        raise _fail("state_unbound", "This browser did not start the login (no login cookie)")
    login = await service.consume_login_state(state, browser_binding)
    if login is None:
        raise _fail("state_invalid", "The login state is unknown, expired or already used")
    try:
        tokens = await provider.exchange_code(code, login["code_verifier"])
        claims = await provider.validate_id_token(tokens["id_token"], nonce=login["nonce"])
        userinfo = await provider.userinfo(str(tokens.get("access_token") or ""))
    except TokenRejected as exc:
        raise _fail(exc.reason, exc.detail) from None
    except ProviderUnavailable as exc:
        raise UpstreamUnavailable(
            "The identity provider is unreachable; retry shortly", extra={"reason": str(exc)}
        ) from exc
    if userinfo is not None:
        if userinfo.get("sub") != claims["sub"]:
            raise _fail("userinfo_sub_mismatch", "UserInfo describes another subject")
        claims = {**claims, **{k: userinfo[k] for k in USERINFO_PROFILE_CLAIMS if k in userinfo}}
    try:
        identity = read_identity(claims)
    except ClaimRefused as exc:
        raise LoginFailed(exc.detail, extra={"reason": exc.reason, "claim": exc.claim}) from None
    user, session = await service.sign_in(
        identity,
        settings,
        client_ip=client_ip,
        user_agent=user_agent,
        id_token=str(tokens["id_token"]),
        claims=_session_claims(claims, identity),
    )
    return LoginResult(session, str(login["next_url"]), user.user_id, user.is_super_admin)


def _session_claims(claims: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """The claims kept with the session, so /userinfo is never needed again (F5): the
    checked identity as the provider sent it (an e-mail only when verified), and
    `auth_time` when it is a plain time."""
    kept: dict[str, Any] = {"sub": identity.subject}
    if identity.email is not None:
        kept["email"], kept["email_verified"] = claims["email"], True  # checked whole
    for name in NAME_CLAIMS:
        if getattr(identity, name):
            kept[name] = getattr(identity, name)
    auth_time = claims.get("auth_time")
    if type(auth_time) is int and 0 <= auth_time <= MAX_AUTH_TIME:
        kept["auth_time"] = auth_time
    return kept
