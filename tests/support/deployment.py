"""Pieces of a production-like deployment for end-to-end tests: Debian's nginx terminating
TLS with a self-signed certificate for made-up host names, and Debian's Chromium resolving
those names to this machine (`--host-resolver-rules`)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.env import ROOT
from tests.support.processes import child_env

SPA = ROOT / "examples" / "spa"
"""The example front end (its page, app.js and config.json)."""
VENDOR = ROOT / "tests" / "js" / "node_modules"
"""The official OpenFeature packages the page imports (served at /vendor/)."""


def load_demo(database_url: str, issuer: str, people: dict[str, str]) -> None:
    """The demo data keyed to `issuer` (`python -m api.ops.demo`, as `make run` loads it),
    and each provider subject → e-mail registered with the mock OpenID Provider (its own
    set-up API: the provider lies outside the product)."""
    loaded = subprocess.run(
        [sys.executable, "-m", "api.ops.demo"],
        cwd=ROOT,
        env=child_env(database_url, OIDC_ISSUER=issuer),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    for sub, email in people.items():
        claims = {"email": email, "email_verified": True, "name": sub}
        assert httpx.put(f"{issuer}/users/{sub}", json=claims, timeout=5).status_code == 204


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP *.zebra.associates 127.0.0.1, MAP *.test 127.0.0.1",
]


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ text/html html; text/javascript js mjs; application/json json map; }}
    ssl_certificate {prefix}/cert.pem;
    ssl_certificate_key {prefix}/key.pem;
{servers}
}}
"""

API_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {host};
        location / {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_set_header Host $host:$server_port;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_http_version 1.1;  # keep-alive upstream; event streams stay open
            proxy_set_header Connection "";
            proxy_read_timeout 75s;  # above the streams' 15 s heartbeat
        }}
    }}
"""

PAGE_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {host};
        root {root};
        location /vendor/ {{ alias {vendor}/; }}
        location = /config.json {{
            default_type application/json;
            return 200 '{config}';
        }}
    }}
"""


def self_signed_certificate(directory: Path, names: list[str]) -> None:
    san = ",".join(f"DNS:{name}" for name in names)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=marketedge-shapes", "-addext", f"subjectAltName={san}",
            "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def tls_config(prefix: Path, servers: str) -> str:
    """An nginx configuration terminating TLS (prefix/cert.pem) for `servers` blocks."""
    return NGINX_CONF.format(prefix=prefix, servers=servers)


class Nginx:
    """Debian's nginx as a non-daemon child with its own prefix and configuration, listening
    on 127.0.0.1:`port`."""

    def __init__(self, prefix: Path, port: int, config: str) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert Path(binary).exists(), "nginx is missing: scripts/bootstrap.sh --browser"
        self.port = port
        conf = prefix / "nginx.conf"
        conf.write_text(config)
        self.process = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (prefix / "error.log").read_text()
            try:
                self.connect().close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("nginx did not start")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def chromium_launcher() -> Iterator[Any]:
    """Playwright's Chromium driver with Debian's browser: (browser type, executable)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is installed by scripts/bootstrap.sh --browser"
    with sync_playwright() as playwright:
        yield playwright.chromium, executable


def browser_context(chromium: Any, profile: Path | None) -> Any:
    """A fresh context with the browser's defaults, or a persistent profile whose preferences
    allow third-party cookies (`profile.cookie_controls_mode: 0`)."""
    kind, executable = chromium
    if profile is None:
        browser = kind.launch(executable_path=executable, args=CHROMIUM_ARGS)
        return browser.new_context(ignore_https_errors=True)
    (profile / "Default").mkdir(parents=True)
    preferences = {"profile": {"cookie_controls_mode": 0}}
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))
    return kind.launch_persistent_context(
        str(profile), executable_path=executable, args=CHROMIUM_ARGS, ignore_https_errors=True
    )
