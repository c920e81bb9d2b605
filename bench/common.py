"""Shared pieces: the benchmark database, a real uvicorn server, the table of rows.

The one load generator is wrk, driven from bench/traffic.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH_ENV = {
    "APP_ENV": "production",
    "PUBLIC_URL": "http://127.0.0.1:8000",
    "OIDC_ISSUER": "http://127.0.0.1:1/not-used-by-benchmarks",
    "OIDC_CLIENT_ID": "bench",
    "OIDC_CLIENT_SECRET": "bench",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class Row:
    benchmark: str
    metric: str
    value: float
    unit: str
    target: str = ""

    def render(self) -> str:
        number = f"{self.value:,.3f}" if self.value < 100 else f"{self.value:,.0f}"
        return f"| {self.benchmark} | {self.metric} | {number} {self.unit} | {self.target} |"


def print_table(rows: list[Row]) -> None:
    print("| benchmark | metric | value | target |")
    print("|---|---|---|---|")
    for row in rows:
        print(row.render())


def bench_database(name: str) -> str:
    """A fresh database for this benchmark on the embedded server (or DATABASE_URL's)."""
    os.environ.setdefault("EMBEDDED_PG_DIR", str(ROOT / ".data" / "postgres"))
    import pgserver

    from api.platform.db.embedded_postgres import data_dir

    data_dir().mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir(), cleanup_mode=None)
    server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
    server.psql(f'CREATE DATABASE "{name}";')
    url = str(server.get_uri(name))
    env = {**os.environ, **BENCH_ENV, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "api.ops.release"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """The app plus a bare Litestar endpoint at /bare, in one uvicorn process."""

    def __init__(self, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.server:create_bench_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",  # the production server's protocol: httptools plus our limits
            "api.platform.http.server_protocol:BoundedHttpToolsProtocol",
        ]
        environment = {**os.environ, **BENCH_ENV, "DATABASE_URL": database_url, **env}
        self.process = subprocess.Popen(command, cwd=ROOT, env=environment)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("benchmark server did not become ready")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def admin_session(url: str) -> tuple[str, str]:
    """A super-admin with a live session: (session token, CSRF token)."""
    from api.auth.sessions import csrf_token_for, hash_token, new_token

    token = new_token()
    connection = await asyncpg.connect(url)
    try:
        admin = await connection.fetchval(
            "INSERT INTO users (oidc_issuer, oidc_subject, email, is_super_admin)"
            " VALUES ('bench', 'bench-admin', 'bench-admin@bench.test', true) RETURNING id"
        )
        await connection.execute(
            "INSERT INTO user_sessions (token_hash, user_id, expires_at)"
            " VALUES ($1, $2, now() + interval '1 day')",
            hash_token(token),
            admin,
        )
    finally:
        await connection.close()
    return token, csrf_token_for(token)


@dataclass(frozen=True)
class Flip:
    ok: bool
    sent: float
    """Wall-clock time (time.time()) the PATCH was sent: the commit happened after it."""
    answered: float
    """Wall-clock time its answer was read: the commit happened before it."""


def flip_flag(client: httpx.Client, csrf: str, key: str = "flag-1") -> Flip:
    """Turn flag `key` on or off through the admin REST API (`client` carries a super-admin's
    session cookie): a change that alters every bench user's evaluation."""
    flag = client.get(f"/api/v1/admin/feature-flags/{key}").json()
    sent = time.time()
    response = client.patch(
        f"/api/v1/admin/feature-flags/{key}",
        json={"version": flag["version"], "enabled": not flag["enabled"]},
        headers={"X-CSRF-Token": csrf, "Origin": BENCH_ENV["PUBLIC_URL"]},
    )
    return Flip(response.status_code == 200, sent, time.time())
