"""Piccolo Admin, built once, mounted at /admin/ behind our OIDC session.

Every request is checked here before the admin sees it: anonymous visitors are sent to the
OIDC login and come back to /admin/; signed-in people who are not super-admins get a 403
page; PUT (which skips the admin's hooks) is refused. The admin's own session cookie is
replaced by our session token, which `AdminSession.get_user_id` validates again, and its
logout ends our session. Writes run in one transaction that carries the super-admin's
identity, which the audit triggers record as the actor.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, unquote

from litestar import asgi
from litestar.connection import ASGIConnection
from litestar.types import HTTPResponseStartEvent, Message, Receive, Scope, Send

from api.admin.bridge import admin_user_id
from api.admin.config import build_admin
from api.auth.identity import identify, settings_of
from api.auth.routes import provider_logout_url
from api.auth.sessions import cookie_name, end_session, session_id_token
from api.client_ip import client_ip
from api.db import engine, fetch
from api.request_context import current_request_id

_admin: Any = None
LOGOUT_COOKIE = "me_admin_logout"
FORBIDDEN_PAGE = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8><title>Forbidden</title></head>"
    b"<body style='font:15px system-ui;margin:3rem'><h1>403 - super-admins only</h1>"
    b"<p>You are signed in, but the admin is for platform super-admins.</p>"
    b"<p><a href='/'>Back to MarketEdge</a></p></body></html>"
)


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


def _with_admin_cookie(scope: Scope, token: str) -> Scope:
    """Replace any `id` cookie the browser sent by our session token."""
    headers = []
    for name, value in scope["headers"]:
        if name == b"cookie":
            jar = SimpleCookie()
            jar.load(value.decode("latin-1"))
            kept = "; ".join(f"{k}={m.value}" for k, m in jar.items() if k != "id")
            value = (kept + "; " if kept else "").encode("latin-1") + b"id=" + token.encode()
        headers.append((name, value))
    if not any(name == b"cookie" for name, _ in headers):
        headers.append((b"cookie", b"id=" + token.encode()))
    return {**scope, "headers": headers}  # type: ignore[return-value]


@asgi("/admin", is_mount=True, copy_scope=True, include_in_schema=False)
async def admin_mount(scope: Scope, receive: Receive, send: Send) -> None:
    if scope.get("raw_path", b"").rstrip(b"?") == b"/admin":
        await _redirect(send, "/admin/")
        return
    connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope, receive)
    caller = await identify(connection)
    method = scope.get("method", "GET")
    path = scope.get("path", "")
    if caller is None or caller.via != "session":
        if method == "GET" and path in ("", "/", "/admin", "/admin/"):
            # Right after the admin's logout its page reloads: send it to the provider's logout.
            after_logout = connection.cookies.get(LOGOUT_COOKIE)
            clear = [
                (b"set-cookie", f"{LOGOUT_COOKIE}=; Max-Age=0; Path=/admin; HttpOnly".encode())
            ]
            issuer = settings_of(connection).oidc_issuer
            if after_logout and (
                unquote(after_logout) == "/" or unquote(after_logout).startswith(issuer)
            ):
                await _respond(
                    send,
                    302,
                    b"",
                    b"text/plain",
                    [(b"location", unquote(after_logout).encode()), *clear],
                )
                return
            await _redirect(send, "/api/v1/auth/login?next=/admin/")
        else:
            await _respond(send, 401, b'{"error":"not_authenticated"}', b"application/json")
        return
    if not caller.is_super_admin:
        await _respond(send, 403, FORBIDDEN_PAGE, b"text/html; charset=utf-8")
        return
    token = connection.cookies.get(cookie_name(settings_of(connection)), "")
    if path.rstrip("/").endswith("/public/logout"):
        settings = settings_of(connection)
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
    inner = _with_admin_cookie(scope, token)
    if method in ("POST", "PATCH", "DELETE"):
        # The answer is held until the transaction commits, so a client that reads after
        # it never sees the old row.
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        async with engine().transaction() as transaction:
            await fetch(
                "SELECT set_config('app.actor_id', $1, true),"
                " set_config('app.actor_email', $2, true),"
                " set_config('app.request_id', $3, true), set_config('app.client_ip', $4, true)",
                str(caller.user_id),
                caller.email or "",
                current_request_id() or "",
                client_ip(connection, settings_of(connection)),
            )
            await admin_app()(inner, receive, hold)
            refused = any(m["type"] == "http.response.start" and m["status"] >= 400 for m in held)
            if refused:  # e.g. a constraint the admin reported: nothing of it may stay
                await transaction.rollback()  # type: ignore[no-untyped-call]
        for message in held:
            await send(message)
        return
    await admin_app()(inner, receive, send)
