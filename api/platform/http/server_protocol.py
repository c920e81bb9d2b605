"""uvicorn's httptools protocol with the limits it lacks (issue 19 #6).

httptools has no header-size limit, and uvicorn runs no timer while a connection's request
line and headers arrive: one client could send a 32 MB header, or hold connections open by
sending headers a byte at a time, and nothing bounded how many connections were served at
once. This subclass keeps httptools (the parser the benchmark targets were met with) and
adds, from Settings:

- request line and headers over `max_header_bytes` → 431, and the connection is closed;
- a request line and headers still incomplete `header_timeout_seconds` after the connection
  opened (or after the request's first bytes) → 408 and closed; a new connection that sent
  nothing at all is closed silently, like an idle keep-alive one;
- a request body that stops arriving for `body_timeout_seconds` → 408 (or, once an answer
  has started, just closed);
- idle keep-alive connections closed after `keep_alive_seconds` (uvicorn's own timer);
- more than `max_connections` open connections, or running requests → 503 + Retry-After.

A refusal is written, the sending side shut (FIN), and what the client still sends is read
and dropped for a moment before closing, so the client reads the answer instead of a reset.
A request that arrives in one read, the common case, arms no timer of its own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from api.platform.config import Settings, get_settings
from api.platform.http.errors import error_body

logger = logging.getLogger("api.platform.http.server")

LINGER_SECONDS = 2.0
"""How long a refused connection keeps reading (and dropping) what its client still sends."""
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_header_bytes: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    keep_alive_seconds: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> ServerLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_seconds=settings.header_timeout_seconds,
            body_timeout_seconds=settings.body_timeout_seconds,
            keep_alive_seconds=settings.keep_alive_seconds,
            max_connections=settings.max_connections,
        )


@cache
def configured_limits() -> ServerLimits:
    """Read once per process: every worker reads the same environment."""
    return ServerLimits.of(get_settings())


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that was just refused."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = configured_limits()
        self._max_header_bytes = limits.max_header_bytes
        self._header_timeout = limits.header_timeout_seconds
        self._body_timeout = limits.body_timeout_seconds
        self._max_connections = limits.max_connections
        self.timeout_keep_alive = limits.keep_alive_seconds  # type: ignore[assignment]
        self.limit_concurrency = None  # ours answers with Retry-After (uvicorn's does not)
        self._in_headers = True
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: drop what the client still sends
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._refused:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_headers:
            self._header_bytes += len(data)
            if self._header_bytes > self._max_header_bytes:
                self._refuse(
                    431,
                    "request_header_fields_too_large",
                    f"The request line and headers exceed {self._max_header_bytes} bytes",
                )
            elif self._header_timer is None:
                self._header_timer = self.loop.call_later(
                    self._header_timeout, self._headers_too_slow
                )
            return
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            self._body_seen = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self._body_timeout, self._body_too_slow)

    # Parser callbacks
    def on_message_begin(self) -> None:
        self._in_headers = True
        self._header_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if (
            len(self.connections) > self._max_connections
            or len(self.tasks) >= self._max_connections
        ):
            self._refuse(
                503,
                "overloaded",
                "The server is serving as many connections as it may; retry shortly",
                retry_after=True,
            )
            raise _Refused
        super().on_headers_complete()

    # Timers
    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._in_headers:
            return
        if self._header_bytes == 0:
            self.transport.close()  # nothing asked: close like an idle keep-alive connection
            return
        self._refuse(408, "request_timeout", "The request headers took too long to arrive")

    def _body_too_slow(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete:
            return
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # we stopped reading (the app is busy), not the client
            self._body_seen = now
        idle = now - self._body_seen
        if idle < self._body_timeout:
            self._body_timer = self.loop.call_later(self._body_timeout - idle, self._body_too_slow)
            return
        if cycle.response_started:
            self.transport.close()
            return
        self._refuse(408, "request_timeout", "The request body stopped arriving")

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    # Refusals
    def _refuse(self, status: int, code: str, detail: str, *, retry_after: bool = False) -> None:
        """Answer `status` with our JSON error, then close without a reset (see module doc)."""
        self._refused = True
        self._cancel_timers()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        logger.warning("%d %s: %s", status, code, client)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() ends and its send() is ignored
            cycle.message_event.set()
        body = msgspec.json.encode(error_body(status, code, detail))
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"x-content-type-options: nosniff\r\n")
        if retry_after:
            head.append(b"retry-after: %d\r\n" % RETRY_AFTER_SECONDS)
        head.append(b"connection: close\r\n\r\n")
        transport = self.transport
        transport.write(b"".join(head) + body)
        if transport.can_write_eof():
            transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, transport.close)
