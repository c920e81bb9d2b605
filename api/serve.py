"""The `web:` process: validate configuration, then serve on $PORT with uvicorn."""

from __future__ import annotations

import os
import sys

import uvicorn

from api.settings import SettingsError, load_settings


def main() -> None:
    try:
        load_settings()
        port = int(os.environ.get("PORT", "8000"))
        workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ValueError as exc:
        print(f"configuration error: PORT/WEB_CONCURRENCY: {exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=os.environ.get("HOST", "0.0.0.0"),  # noqa: S104 - a container listens on all
        port=port,
        workers=workers,
        loop="uvloop",  # both come with uvicorn[standard]; named so "auto" cannot fall back
        http="httptools",
        proxy_headers=False,  # the client IP is decided by TRUSTED_PROXIES, not uvicorn
        access_log=False,
        server_header=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
