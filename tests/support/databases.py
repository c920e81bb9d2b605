"""Fresh databases on the embedded test server, and private servers that tests may stop."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pgserver
from pgserver._commands import pg_ctl

from tests.support.env import TEST_PG_DIR


def test_server() -> Any:
    TEST_PG_DIR.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(TEST_PG_DIR, cleanup_mode=None)


def fresh_database(name: str) -> str:
    """Drop and recreate `name` on the shared test server; return its URL."""
    server = test_server()
    server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
    server.psql(f'CREATE DATABASE "{name}";')
    return str(server.get_uri(name))


class PrivateServer:
    """A Postgres of a test's own, which it may stop and start under a running app."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = pgserver.get_server(data_dir, cleanup_mode=None)

    def url(self, database: str = "postgres") -> str:
        if database != "postgres":
            self.server.psql(f'CREATE DATABASE "{database}";')
        return str(self.server.get_uri(database))

    def stop(self) -> None:
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=self.data_dir, user=self.server.system_user)

    def start(self) -> None:
        # get_server() hands back its cached handle; ask that handle to start the server.
        self.server.ensure_postgres_running()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def stop_test_server() -> None:
    """Stop the shared test server, so a test run leaves no process behind."""
    if not (TEST_PG_DIR / "postmaster.pid").exists():
        return
    server = test_server()
    with contextlib.suppress(subprocess.CalledProcessError):
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=TEST_PG_DIR, user=server.system_user)
