"""Piccolo Admin, built once, mounted at /admin/ behind our OIDC session.

Every request is checked here before the admin sees it: anonymous visitors are sent to the
OIDC login and come back to /admin/; signed-in people who are not super-admins get a 403
page; PUT (which skips the admin's hooks) is refused. The admin's own session cookie is
replaced by our session token, which `AdminSession.get_user_id` validates again, and its
logout ends our session. Writes run in one transaction that carries the super-admin's
identity, which the audit triggers record as the actor.

CSRF: the API's one rule (`api.auth.guards.check_csrf`) holds here too. The admin's
`csrftoken` cookie is always our session's CSRF token (set by us, never the admin's own
random one or a value the browser brings), its JavaScript echoes it in `X-CSRFToken`, and
every unsafe request, logout included, needs that header and an `Origin` equal to
PUBLIC_URL's origin.
"""

from __future__ import annotations

import json
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from litestar import asgi
from litestar.connection import ASGIConnection
from litestar.types import HTTPResponseStartEvent, Message, Receive, Scope, Send

from api.admin_ui.bridge import admin_user_id
from api.admin_ui.config import build_admin
from api.admin_ui.list_params import list_params_refusal
from api.admin_ui.write_hooks import AdminWriter, admin_writer
from api.auth.guards import UNSAFE_METHODS, check_csrf
from api.auth.identification import identify
from api.auth.identity import Caller
from api.auth.oidc import ProviderUnavailable, provider_for
from api.auth.routes import provider_logout_url
from api.auth.service import end_session
from api.auth.sessions import cookie_name, session_id_token
from api.platform.config import Settings, settings_of
from api.platform.db.audit import act_as
from api.platform.db.changes import change_transaction
from api.platform.http.errors import Forbidden, error_body

_admin: Any = None
LOGOUT_COOKIE = "me_admin_logout"
ADMIN_CSRF_COOKIE = "csrftoken"  # the names Piccolo Admin's JavaScript uses (the API's
ADMIN_CSRF_HEADER = "X-CSRFToken"  # header is api.auth.guards.API_CSRF_HEADER)
FORBIDDEN_PAGE = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8><title>Forbidden</title></head>"
    b"<body style='font:15px system-ui;margin:3rem'><h1>403 - super-admins only</h1>"
    b"<p>You are signed in, but the admin is for platform super-admins.</p>"
    b"<p><a href='/'>Back to MarketEdge</a></p></body></html>"
)


class _Refused(Exception):
    """The admin refused a write: its transaction must roll back."""


def admin_app() -> Any:
    global _admin
    if _admin is None:
        _admin = build_admin()
    return _admin


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers + (extra or []),
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _redirect(send: Send, location: str) -> None:
    await _respond(send, 302, b"", b"text/plain", [(b"location", location.encode())])


def _with_cookies(scope: Scope, ours: dict[str, str]) -> Scope:
    """The request as the admin sees it: the browser's cookies named in `ours` replaced."""
    kept: list[str] = []
    for name, value in scope["headers"]:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:
                continue
            kept += [f"{k}={m.value}" for k, m in jar.items() if k not in ours]
    kept += [f"{k}={v}" for k, v in ours.items()]
    headers = [(n, v) for n, v in scope["headers"] if n != b"cookie"]
    headers.append((b"cookie", "; ".join(kept).encode("latin-1")))
    return {**scope, "headers": headers}  # type: ignore[return-value]


def _csrf_cookie(caller: Caller, settings: Settings) -> tuple[bytes, bytes]:
    """The admin's `csrftoken` cookie, bound to the session (its JavaScript must read it)."""
    value = f"{ADMIN_CSRF_COOKIE}={caller.csrf_token}; Path=/; SameSite=Strict"
    if settings.public_url_is_https:
        value += "; Secure"
    return (b"set-cookie", value.encode())


async def _is_provider_logout(target: str, settings: Settings) -> bool:
    """Only our home page or the provider's own end-session endpoint, compared exactly."""
    if target == "/":
        return True
    try:
        endpoint = (await provider_for(settings).metadata()).end_session_endpoint
        if not endpoint:
            return False
        sent, known = urlsplit(target), urlsplit(endpoint)
    except (ProviderUnavailable, ValueError):
        return False
    return (sent.scheme, sent.netloc, sent.path, sent.fragment) == (
        known.scheme,
        known.netloc,
        known.path,
        "",
    )


async def _refuse(send: Send, error: Forbidden) -> None:
    body = json.dumps(error_body(error.status_code, error.code, error.detail, error.extra))
    await _respond(send, error.status_code, body.encode(), b"application/json")


@asgi("/admin", is_mount=True, copy_scope=True, include_in_schema=False)
async def admin_mount(scope: Scope, receive: Receive, send: Send) -> None:
    if scope.get("raw_path", b"").rstrip(b"?") == b"/admin":
        await _redirect(send, "/admin/")
        return
    connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope, receive)
    # An ASGI mount: no guard or dependency reaches it. The live session row, not the cache:
    # demotion, deactivation and logout end admin access at once, whoever wrote them.
    caller = await identify(connection, live=True)
    method = scope.get("method", "GET")
    path = scope.get("path", "")
    if caller is None or caller.via != "session":
        if method == "GET" and path in ("", "/", "/admin", "/admin/"):
            # Right after the admin's logout its page reloads: send it to the provider's logout.
            after_logout = connection.cookies.get(LOGOUT_COOKIE)
            clear = [
                (b"set-cookie", f"{LOGOUT_COOKIE}=; Max-Age=0; Path=/admin; HttpOnly".encode())
            ]
            target = unquote(after_logout or "")
            if target and await _is_provider_logout(target, settings_of(connection)):
                await _respond(
                    send, 302, b"", b"text/plain", [(b"location", target.encode()), *clear]
                )
                return
            await _redirect(send, "/api/v1/auth/login?next=/admin/")
        else:
            await _respond(send, 401, b'{"error":"not_authenticated"}', b"application/json")
        return
    if not caller.is_super_admin:
        await _respond(send, 403, FORBIDDEN_PAGE, b"text/html; charset=utf-8")
        return
    settings = settings_of(connection)
    token = connection.cookies.get(cookie_name(settings), "")
    if method in UNSAFE_METHODS:
        try:
            check_csrf(
                connection,
                caller,
                header=ADMIN_CSRF_HEADER,
                allowed_origins=(settings.public_origin,),
            )
        except Forbidden as refusal:
            await _refuse(send, refusal)
            return
    if path.rstrip("/").endswith("/public/logout"):
        if method != "POST":  # a cross-site link or image must not end the session
            await _respond(
                send,
                405,
                b'{"error":"method_not_allowed","detail":"use POST"}',
                b"application/json",
                [(b"allow", b"POST")],
            )
            return
        target = await provider_logout_url(settings, await session_id_token(token)) or "/"
        await end_session(token)
        remember = (
            f"{LOGOUT_COOKIE}={quote(target, safe='')}; Max-Age=60; Path=/admin; HttpOnly;"
            " SameSite=Lax"
        )
        if settings.public_url_is_https:
            remember += "; Secure"
        await _respond(
            send,
            200,
            b'{"logged_out":true}',
            b"application/json",
            [(b"set-cookie", remember.encode())],
        )
        return
    if method == "PUT":
        await _respond(
            send, 405, b'{"error":"method_not_allowed","detail":"use PATCH"}', b"application/json"
        )
        return
    await admin_user_id(caller.user_id, caller.email)  # committed before any write below
    inner = _with_cookies(scope, {"id": token, ADMIN_CSRF_COOKIE: caller.csrf_token or ""})
    if method in ("POST", "PATCH", "DELETE"):
        # The answer is held until the transaction commits, so a client that reads after
        # it never sees the old row.
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        writer = admin_writer.set(AdminWriter(caller, connection))
        try:
            async with change_transaction():
                await act_as(caller, connection)
                await admin_app()(inner, receive, hold)
                if any(m["type"] == "http.response.start" and m["status"] >= 400 for m in held):
                    raise _Refused  # e.g. a constraint the admin reported: nothing may stay
        except _Refused:
            pass  # rolled back; the services' announcements die with it; the answer says why
        finally:
            admin_writer.reset(writer)
        for message in held:
            await send(message)
        return
    if (bad_params := list_params_refusal(path, scope.get("query_string", b""))) is not None:
        await _respond(send, 400, bad_params, b"application/json")
        return
    if connection.cookies.get(ADMIN_CSRF_COOKIE) == caller.csrf_token:
        await admin_app()(inner, receive, send)
        return

    async def send_csrf_cookie(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], _csrf_cookie(caller, settings)]}
        await send(message)

    await admin_app()(inner, receive, send_csrf_cookie)
