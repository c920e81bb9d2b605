"""The `web:` process: validate configuration, then serve on $PORT with uvicorn.

The HTTP protocol is httptools with our limits on header size and time, body idle time,
keep-alive and connections (`api/platform/http/server_protocol.py`); what only the proxy in
front can bound is listed in the README's deployment section.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import uvicorn

from api.platform.config import Settings, SettingsError, load_settings
from api.platform.http.server_protocol import BoundedHttpToolsProtocol
from api.platform.http.sites import cross_site_warning
from api.platform.logging import configure_logging


def warn_about_cross_site_front_ends(settings: Settings) -> None:
    """Logged here, once per web process (before the workers fork), not in each create_app."""
    if warning := cross_site_warning(settings.public_url, settings.frontend_origins):
        configure_logging(
            json_lines=settings.environment != "development",
            level=logging.getLevelNamesMapping()[settings.log_level],
        )
        logging.getLogger("api.ops.serve").warning(
            warning, extra={"fields": {"event": "cross_site_front_end"}}
        )


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    warn_about_cross_site_front_ends(settings)
    if settings.web_concurrency > 1:
        prepare_multiprocess_metrics()
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


def prepare_multiprocess_metrics() -> None:
    """Several workers: each writes its metrics to files in one directory, which a scrape
    sums (prometheus_client's multiprocess mode). Set before the workers start, hence before
    any of them imports prometheus_client; emptied, so a restart does not add the last run's
    counts to this one's."""
    chosen = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if chosen:
        directory = Path(chosen)
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.db"):
            leftover.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="marketedge-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


if __name__ == "__main__":
    main()
