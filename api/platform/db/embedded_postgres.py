"""The embedded Postgres used when `DATABASE_URL` is unset (development and tests only).

`pgserver` ships real PostgreSQL binaries in its wheel. The server is started once, left
running, and reused by every later process pointing at the same data folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA_DIR = PROJECT_ROOT / ".data" / "postgres"


def data_dir() -> Path:
    return Path(os.environ.get("EMBEDDED_PG_DIR", str(DEFAULT_DATA_DIR))).resolve()


logging.getLogger("pgserver").setLevel(logging.WARNING)


def embedded_database_url(database: str = "postgres") -> str:
    """Start (or reuse) the embedded server and return a URL for `database` on it."""
    try:
        import pgserver  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:  # pragma: no cover - production images lack it on purpose
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded Postgres (pgserver) is not installed"
        ) from exc
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(folder, cleanup_mode=None)  # type: ignore[attr-defined]
    if database != "postgres" and database.isidentifier():
        listed = server.psql("SELECT datname FROM pg_database;")
        if database not in listed.split():
            server.psql(f'CREATE DATABASE "{database}";')
    return str(server.get_uri(database))
