"""Real processes for tests: the release step and app servers under uvicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from tests.support.env import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(database_url: str, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env.update(overrides)
    return env


def run_release(database_url: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.ops.release"],
        cwd=ROOT,
        env=child_env(database_url, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class AppProcess:
    process: subprocess.Popen[str]
    base_url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_app(
    database_url: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> AppProcess:
    """Start `python -m api.ops.serve` (the Procfile's web command) and wait for liveness."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = {"HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_URL": base_url, **dict(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "api.ops.serve"],
        cwd=ROOT,
        env=child_env(database_url, **settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return AppProcess(process, base_url)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("app did not become live in time")
