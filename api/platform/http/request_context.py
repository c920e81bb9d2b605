"""Request ids and access logs for every request, matched route or not.

An outer ASGI wrapper (not Litestar middleware, which skips unmatched routes) so that every
response — 404s and the admin mount included — carries `X-Request-ID`, and every log line
written while handling it names the same id. The access line names the path as the client
sent it (percent-decoded, `/admin` included): it is read before the app runs, since the
admin mount rewrites the scope's path for Piccolo Admin.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from api.platform.logging import access_log, request_id_var
from api.platform.metrics import observe_request

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_INCOMING_ID = re.compile(rb"^[A-Za-z0-9._:-]{8,128}$")
# Unique per process start plus a counter: as unique as a UUID here, and far cheaper.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _SAFE_INCOMING_ID.match(value):
            return value.decode("ascii")
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        http_scope: HTTPScope = scope
        method, path = http_scope["method"], http_scope["path"]
        request_id = _incoming_request_id(scope)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            access_log.record(request_id, method, path, status, round(seconds * 1000, 2))
            observe_request(scope, status, seconds)
            request_id_var.reset(token)
