"""Responses whose JSON body was encoded ahead of time (and often cached per user).

The hot endpoints keep encoded bodies; sending one should cost no serialisation and no
header bookkeeping. `EncodedJSON` is a Litestar `Response`, so handlers keep their
documented return types, but it turns into a two-message ASGI reply directly.
"""

from __future__ import annotations

from typing import Any

from litestar import Response
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

RawHeaders = tuple[tuple[bytes, bytes], ...]
NO_STORE: RawHeaders = ((b"cache-control", b"no-store"),)


class _Prebuilt(ASGIResponse):
    __slots__ = ("_headers", "_payload", "_status")

    def __init__(self, payload: bytes, status: int, headers: RawHeaders) -> None:
        # ASGIResponse.__init__ builds header objects this response does not need.
        self._payload, self._status, self._headers = payload, status, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._payload)).encode()),
            *self._headers,
        ]
        await send({"type": "http.response.start", "status": self._status, "headers": headers})
        await send({"type": "http.response.body", "body": self._payload, "more_body": False})


class EncodedJSON(Response[Any]):
    """`body` is already JSON (of the type the handler declares); sent as is with `headers`
    (lower-case names, as bytes)."""

    def __init__(self, body: bytes, *, status_code: int = 200, headers: RawHeaders = ()) -> None:
        # Response.__init__ is skipped on purpose: nothing here needs its bookkeeping.
        self.content = body
        self.status_code = status_code
        self._raw_headers = headers

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        return _Prebuilt(self.content, self.status_code or 200, self._raw_headers)
