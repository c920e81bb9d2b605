"""The web process warns at start when a front end is on another site (issue 20 #5)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.env import ROOT
from tests.support.processes import child_env, free_port


def startup_log(database: str, tmp_path: Path, public_url: str, front_ends: str) -> list[dict]:
    """Start `python -m api.ops.serve` (production logging), wait for liveness, stop it, and
    return its JSON log lines."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = child_env(
        database,
        APP_ENV="production",
        HOST="127.0.0.1",
        PORT=str(port),
        PUBLIC_URL=public_url,
        FRONTEND_ORIGINS=front_ends,
    )
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.ops.serve"], cwd=ROOT, env=env, stderr=sink
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                pytest.fail("the web process did not become live")
        finally:
            process.terminate()
            process.wait(timeout=10)
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_a_cross_site_front_end_is_warned_about_once_at_start(
    database: str, tmp_path: Path
) -> None:
    lines = startup_log(database, tmp_path, "https://api.marketedge.test", "https://app.zebra.test")
    warnings = [line for line in lines if line.get("event") == "cross_site_front_end"]
    assert len(warnings) == 1, lines
    (warning,) = warnings
    assert warning["level"] == "warning"
    assert "https://app.zebra.test" in warning["message"]
    assert "third-party cookie" in warning["message"]
    assert "https://api.zebra.test" in warning["message"]


def test_a_same_site_front_end_starts_without_the_warning(database: str, tmp_path: Path) -> None:
    lines = startup_log(
        database, tmp_path, "https://api.zebra.associates", "https://app.zebra.associates"
    )
    assert lines, "the start-up log is empty: the test would prove nothing"
    assert not [line for line in lines if line.get("level") == "warning"], lines
