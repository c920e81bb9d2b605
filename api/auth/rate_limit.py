"""Per-client-IP rate limits for the login endpoints (PRODUCT §5): 429 with Retry-After.

A fixed-window counter in process memory: each replica limits on its own, which bounds
abuse per replica without a shared store. The client IP honours TRUSTED_PROXIES only.
"""

from __future__ import annotations

import math
import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.platform.config import settings_of
from api.platform.http.client_ip import client_ip
from api.platform.http.errors import RateLimited

WINDOW_SECONDS = 60.0


class FixedWindowLimiter:
    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._counts: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, now: float | None = None) -> float | None:
        """Count one request; return seconds to wait when over the limit, else None."""
        now = time.monotonic() if now is None else now
        started, count = self._counts.get(key, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        count += 1
        self._counts[key] = (started, count)
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if now - v[0] < self.window}
        if count > self.limit:
            return max(0.0, self.window - (now - started))
        return None


auth_limiter = FixedWindowLimiter(60)
"""The process's limiter; `create_app` sets its limit from `Settings`."""


async def limit_auth_requests(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler | None = None
) -> None:
    ip = client_ip(connection, settings_of(connection))
    wait = auth_limiter.hit(ip)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            "Too many login requests from this address; retry later",
            extra={"retry_after": seconds},
            headers={"Retry-After": str(seconds)},
        )
