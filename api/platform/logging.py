"""Structured logging: JSON lines in production, readable lines in development.

Every record carries the id of the request being handled (see request_context). Control
characters in messages and paths are written as `\\xNN` escapes in both formats, so a path
carrying `%0d%0a` cannot forge a line, nor an escape sequence reach an operator's terminal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import msgspec

from api.platform.background import running

# Set by api/platform/http/request_context.py for each request; read by every log line.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape: one log record, one line."""
    return _CONTROL.sub(_escaped, text) if _CONTROL.search(text) else text


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": escape_controls(record.getMessage()),
        }
        request_id = current_request_id()
        if request_id:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry, enc_hook=str).decode()


class DevFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        request_id = current_request_id()
        prefix = f"[{request_id[:8]}] " if request_id else ""
        message = escape_controls(record.getMessage())
        line = f"{record.levelname:<7} {record.name}: {prefix}{message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(*, json_lines: bool, level: int | None = None) -> None:
    """Root logging; LOG_LEVEL (default INFO) also switches access lines off above INFO."""
    if level is None:
        level = logging.getLevelName(os.environ.get("LOG_LEVEL", "INFO").upper())
        level = level if isinstance(level, int) else logging.INFO
    access_log.json_lines = json_lines
    access_log.enabled = level <= logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if json_lines else DevFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class AccessLog:
    """Access lines, one per request, written in batches.

    The hot path only appends a tuple; lines are encoded and written together at most every
    0.2 s (or every 256 requests), which keeps per-request logging cheap under load.
    """

    FLUSH_SECONDS = 0.2
    FLUSH_SIZE = 256

    def __init__(self) -> None:
        self.json_lines = True
        self.enabled = True
        self._pending: list[tuple[float, str, str, str, int, float]] = []
        self._last_flush = time.monotonic()

    def record(
        self, request_id: str, method: str, path: str, status: int, duration_ms: float
    ) -> None:
        if not self.enabled:
            return
        self._pending.append((time.time(), request_id, method, path, status, duration_ms))
        now = time.monotonic()
        if len(self._pending) >= self.FLUSH_SIZE or now - self._last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        lines = []
        for created, request_id, method, raw_path, status, duration in pending:
            path = escape_controls(raw_path)
            if self.json_lines:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
                lines.append(
                    msgspec.json.encode(
                        {
                            "ts": f"{stamp}.{int(created * 1000) % 1000:03d}Z",
                            "level": "info",
                            "logger": "api.access",
                            "message": f"{method} {path} {status}",
                            "request_id": request_id,
                            "method": method,
                            "path": path,
                            "status": status,
                            "duration_ms": duration,
                        }
                    ).decode()
                )
            else:
                lines.append(f"INFO    api.access: [{request_id[:8]}] {method} {path} {status}")
        sys.stderr.write("\n".join(lines) + "\n")


access_log = AccessLog()


@asynccontextmanager
async def access_log_flusher(_: Any) -> AsyncIterator[None]:
    """Writes pending access lines when traffic pauses, and the last ones at shutdown."""

    async def keep_flushing() -> None:
        while True:
            await asyncio.sleep(AccessLog.FLUSH_SECONDS)
            access_log.flush()

    try:
        async with running(keep_flushing()):
            yield
    finally:
        access_log.flush()
