"""The auth endpoints of PRODUCT §4: config, login, callback, session check, logout."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery
from litestar.response import Redirect

from api.auth.identification import identify
from api.auth.identity import Caller
from api.auth.login import begin_login, complete_login, prelogin_cookie_name, safe_next
from api.auth.oidc import ProviderUnavailable, provider_for
from api.auth.rate_limit import limit_auth_requests
from api.auth.schemas import AuthConfig, LogoutResult, SessionCheck
from api.auth.service import end_session
from api.auth.sessions import cookie_name, session_cache, session_id_token
from api.platform.config import Settings, settings_of
from api.platform.http.client_ip import client_ip
from api.platform.http.responses import NO_STORE as ENCODED_NO_STORE
from api.platform.http.responses import EncodedJSON

NO_STORE = {"Cache-Control": "no-store"}


def session_cookie(settings: Settings, token: str) -> Cookie:
    return Cookie(
        key=cookie_name(settings),
        value=token,
        max_age=settings.session_max_hours * 3600,
        path="/",
        secure=settings.public_url_is_https,
        httponly=True,
        samesite=settings.session_cookie_samesite,
    )


def expired_cookie(name: str, settings: Settings, samesite: str) -> Cookie:
    return Cookie(
        key=name,
        value="",
        max_age=0,
        path="/",
        secure=settings.public_url_is_https,
        httponly=True,
        samesite=samesite,  # type: ignore[arg-type]
    )


@get("/api/v1/auth/config", tags=["auth"], operation_id="authConfig", sync_to_thread=False)
def auth_config(request: Request[Any, Any, Any]) -> AuthConfig:
    """What the front end needs to start a login (the old "auth0-url" endpoint)."""
    settings = settings_of(request)
    return AuthConfig(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        login_url=f"{settings.public_url}/api/v1/auth/login",
        logout_url=f"{settings.public_url}/api/v1/auth/logout",
        session_check_url=f"{settings.public_url}/api/v1/auth/session/check",
    )


@get(
    "/api/v1/auth/login",
    tags=["auth"],
    operation_id="login",
    guards=[limit_auth_requests],
    status_code=302,
)
async def login(request: Request[Any, Any, Any], next: FromQuery[str | None] = None) -> Redirect:
    """302 to the provider (code flow, PKCE S256, state, nonce); sets the pre-login cookie."""
    settings = settings_of(request)
    start = await begin_login(provider_for(settings), safe_next(next, settings))
    return Redirect(
        start.authorization_url,
        status_code=302,
        headers=NO_STORE,
        cookies=[
            Cookie(
                key=prelogin_cookie_name(settings),
                value=start.browser_binding,
                max_age=600,
                path="/",
                secure=settings.public_url_is_https,
                httponly=True,
                samesite="lax",
            )
        ],
    )


@get(
    "/api/v1/auth/callback",
    tags=["auth"],
    operation_id="loginCallback",
    guards=[limit_auth_requests],
    status_code=302,
)
async def callback(request: Request[Any, Any, Any]) -> Redirect:
    """Validate everything, provision the user, start a fresh session, 302 to `next`."""
    settings = settings_of(request)
    params = {key: str(value) for key, value in request.query_params.items()}
    result = await complete_login(
        provider_for(settings),
        settings,
        params,
        request.cookies.get(prelogin_cookie_name(settings)),
        client_ip=client_ip(request, settings),
        user_agent=request.headers.get("user-agent"),
    )
    return Redirect(
        result.next_url,
        status_code=302,
        headers=NO_STORE,
        cookies=[
            session_cookie(settings, result.session.token),
            expired_cookie(prelogin_cookie_name(settings), settings, "lax"),
        ],
    )


@get(
    "/api/v1/auth/session/check",
    tags=["auth"],
    operation_id="sessionCheck",
    responses={401: ResponseSpec(SessionCheck, description="Not signed in")},
)
async def session_check(request: Request[Any, Any, Any]) -> Response[SessionCheck]:
    """Who is signed in, and the CSRF token the front end must echo on unsafe requests."""
    caller = await identify(request)
    if caller is None or caller.via != "session" or caller.session_id is None:
        return Response(SessionCheck(authenticated=False), status_code=401, headers=NO_STORE)
    answer = session_cache.answers.get(caller.session_id)
    if answer is None or answer[0] is not caller:
        body = msgspec.json.encode(
            SessionCheck(
                authenticated=True,
                user_id=caller.user_id,
                email=caller.email,
                is_super_admin=caller.is_super_admin,
                expires_at=caller.expires_at,
                csrf_token=caller.csrf_token,
            )
        )
        answer = (caller, body)
        session_cache.answers.put(caller.session_id, answer)
    return EncodedJSON(answer[1], headers=ENCODED_NO_STORE)


@post(
    "/api/v1/auth/logout",
    tags=["auth"],
    operation_id="logout",
    guards=[limit_auth_requests],
    status_code=200,
)
async def logout(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller]
) -> Response[LogoutResult]:
    """End the session server-side, clear the cookie, hand back the provider's logout URL."""
    settings = settings_of(request)
    token = request.cookies.get(cookie_name(settings), "")
    id_token = await session_id_token(token) if token else None
    if token:
        await end_session(token)
    return Response(
        LogoutResult(
            logged_out=True, end_session_url=await provider_logout_url(settings, id_token)
        ),
        headers=NO_STORE,
        cookies=[expired_cookie(cookie_name(settings), settings, settings.session_cookie_samesite)],
    )


async def provider_logout_url(settings: Settings, id_token: str | None) -> str | None:
    """The provider's end-session URL for this login, or None if it offers none (or is down)."""
    try:
        metadata = await provider_for(settings).metadata()
    except ProviderUnavailable:
        return None
    if not metadata.end_session_endpoint:
        return None
    query = {
        "client_id": settings.oidc_client_id,
        "post_logout_redirect_uri": f"{settings.public_url}/",
    }
    if id_token:
        query["id_token_hint"] = id_token
    return f"{metadata.end_session_endpoint}?{urlencode(query)}"
