"""Security headers on every response: routes, errors, 404s and the admin mount (issue 11 #9).

An outer ASGI wrapper, so nothing that answers can miss them. Headers a response already
carries are left alone.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.platform.config import Settings


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),  # no page of ours is meant to be framed
        (b"content-security-policy", b"frame-ancestors 'none'"),
        (b"referrer-policy", b"same-origin"),
    ]
    if settings.public_url_is_https:
        headers.append((b"strict-transport-security", b"max-age=31536000"))
    return headers


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = tuple(security_headers(settings))
        self._names = frozenset(name for name, _ in self.headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        ours, names = self.headers, self._names

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                # Usually no response sets one of ours: append the pre-built tuple as is.
                if any(name.lower() in names for name, _ in headers):
                    present = {name.lower() for name, _ in headers}
                    extra = tuple((n, v) for n, v in ours if n not in present)
                else:
                    extra = ours
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
