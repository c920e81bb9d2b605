"""The `web:` process: validate configuration, then serve on $PORT with uvicorn.

The HTTP protocol is httptools with our limits on header size and time, body idle time,
keep-alive and connections (`api/platform/http/server_protocol.py`); what only the proxy in
front can bound is listed in the README's deployment section.
"""

from __future__ import annotations

import sys

import uvicorn

from api.platform.config import SettingsError, load_settings
from api.platform.http.server_protocol import BoundedHttpToolsProtocol


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        loop="uvloop",  # both come with uvicorn[standard]; named so "auto" cannot fall back
        http=BoundedHttpToolsProtocol,
        proxy_headers=False,  # the client IP is decided by TRUSTED_PROXIES, not uvicorn
        access_log=False,
        server_header=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
