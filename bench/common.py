"""Shared pieces: the benchmark database, a real uvicorn server, the load generator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    from api.embedded_postgres import data_dir

    data_dir().mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir(), cleanup_mode=None)
    server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
    server.psql(f'CREATE DATABASE "{name}";')
    url = str(server.get_uri(name))
    env = {**os.environ, **BENCH_ENV, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "api.release"], cwd=ROOT, env=env, check=True, capture_output=True
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
            "--http",
            "httptools",
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


def drive(
    url: str,
    *,
    seconds: float,
    connections: int = 64,
    headers: dict[str, str] | None = None,
    warmup: float = 2.0,
) -> dict[str, Any]:
    """Run the load generator in its own process; returns rps, p50/p99 (ms), errors."""
    command = [
        sys.executable,
        "-m",
        "bench.load",
        url,
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
        "--warmup",
        str(warmup),
        "--headers",
        json.dumps(headers or {}),
    ]
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def versus_bare(name: str, url: str, path: str, token: str, quick: bool) -> list[Row]:
    """Drive `path` with a session and the bare endpoint in the same server, one after the
    other at 64 connections; the target for every endpoint is >= 0.5 x bare, p99 <= 25 ms."""
    seconds = 4.0 if quick else 10.0
    server = Server(url)
    try:
        bare = drive(f"{server.base_url}/bare", seconds=seconds)
        measured = drive(
            f"{server.base_url}{path}", seconds=seconds, headers={"Cookie": f"me_session={token}"}
        )
    finally:
        server.stop()
    return [
        Row(name, "bare endpoint", bare["rps"], "req/s"),
        Row(name, f"GET {path}", measured["rps"], "req/s"),
        Row(name, "ratio to bare", measured["rps"] / bare["rps"], "x", ">= 0.5"),
        Row(name, f"{path} p50", measured["p50_ms"], "ms"),
        Row(name, f"{path} p99", measured["p99_ms"], "ms", "<= 25"),
        Row(name, "bare p50 / p99", bare["p50_ms"], f"/ {bare['p99_ms']:.2f} ms"),
        Row(name, "errors", measured["errors"] + bare["errors"], "", "0"),
    ]
