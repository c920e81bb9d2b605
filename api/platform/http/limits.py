"""Request bodies bounded in size and nesting before any parser sees them (issue 11 #7).

An outer ASGI wrapper, so the limits hold for every route, the Piccolo Admin mount and
unmatched paths alike: a body over `max_request_body_bytes` is refused with 413 (from its
Content-Length, or while it streams in), and a body whose arrays and objects nest deeper
than `max_json_depth` with 400, found by a linear scan that never builds the document.
Deep nesting is what made the JSON parsers recurse until RecursionError (a 500).
"""

from __future__ import annotations

import json
import re

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from litestar.utils.scope.state import ScopeState

from api.platform.config import Settings
from api.platform.http.errors import error_body

# Structural bytes of JSON; everything else is skipped without a Python-level step.
_STRUCTURE = re.compile(rb'["\\\[\]{}]')
_NOT_JSON_MEDIA = (b"multipart/form-data", b"application/x-www-form-urlencoded")


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether arrays/objects in `body` nest deeper than `limit` (strings are skipped)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _STRUCTURE.finditer(body):
        at = match.start()
        char = body[at]
        if in_string:
            if at == escaped_at:
                continue
            if char == 0x5C:  # backslash: the next byte is escaped
                escaped_at = at + 1
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):
            depth -= 1
    return False


async def _refuse(send: Send, status: int, code: str, detail: str, limit: int) -> None:
    body = json.dumps(error_body(status, code, detail, {"limit": limit})).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_bytes = settings.max_request_body_bytes
        self.max_depth = settings.max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        media = b""
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _refuse(send, 400, "bad_request", "Bad Content-Length", self.max_bytes)
                    return
            elif name == b"content-type":
                media = value.split(b";", 1)[0].strip().lower()
            elif name == b"transfer-encoding":
                chunked = True
        if not declared and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        if declared is not None and declared > self.max_bytes:
            await _refuse(
                send, 413, "payload_too_large", "The request body is too large", self.max_bytes
            )
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(
                    send, 413, "payload_too_large", "The request body is too large", self.max_bytes
                )
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if media not in _NOT_JSON_MEDIA and nesting_exceeds(body, self.max_depth):
            await _refuse(
                send, 400, "bad_request", "The request body is nested too deeply", self.max_depth
            )
            return
        # Litestar's `Request.body()` takes it from here instead of streaming it again (and
        # building the header multidict for Content-Length): a tenth of an OFREP bulk
        # request. Other apps (the admin mount) read it from the replayed message.
        ScopeState.from_scope(scope).body = body
        replayed = False

        async def replay() -> ReceiveMessage:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
