"""An httpx client for tests that speak as several people in turn.

httpx deprecates per-request `cookies=` (whether they persist is ambiguous). Tests pass a
person's session cookie per request, so this client sends them, with the client's own
jar, as one explicit `Cookie` header: nothing persists, nothing is ambiguous.
"""

from __future__ import annotations

from typing import Any

import httpx


class SessionClient(httpx.AsyncClient):
    async def request(  # type: ignore[override]
        self, method: str, url: httpx.URL | str, *, cookies: Any = None, **kwargs: Any
    ) -> httpx.Response:
        if cookies:
            merged = httpx.Cookies(self.cookies)
            merged.update(cookies)
            headers = httpx.Headers(kwargs.pop("headers", None))
            headers["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in merged.jar)
            kwargs["headers"] = headers
        return await super().request(method, url, **kwargs)
