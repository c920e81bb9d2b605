"""Piccolo's engine and app registry: Postgres through asyncpg, never SQLite.

`DATABASE_URL` selects the server; unset, an embedded Postgres under `.data/` is used.
Connect and statement timeouts are bounded so a sick database yields a fast 503, not a hang.
With `DATABASE_DIRECT_URL` set, `DATABASE_URL` is a transaction pooler, and the engine is made
safe for it here, so every process (web, release, demo, the super-admin command, Piccolo's
own CLI) connects through it alike.
"""

import os
from typing import Any

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

from api.platform.db.embedded_postgres import embedded_database_url
from api.platform.db.sql import use_transaction_pooler

CONNECT_TIMEOUT_SECONDS = 1.5
STATEMENT_TIMEOUT_MS = 5000


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    return url or embedded_database_url(os.environ.get("EMBEDDED_PG_DATABASE", "marketedge"))


def engine_config() -> dict[str, Any]:
    """asyncpg's connection settings, pooler-safe before the engine exists (Piccolo checks the
    server's version with them at once)."""
    config: dict[str, Any] = {
        "dsn": database_url(),
        "timeout": CONNECT_TIMEOUT_SECONDS,
        "command_timeout": STATEMENT_TIMEOUT_MS / 1000 + 1,
        "server_settings": {
            "statement_timeout": str(STATEMENT_TIMEOUT_MS),
            "application_name": "marketedge",
        },
    }
    if os.environ.get("DATABASE_DIRECT_URL", "").strip():
        use_transaction_pooler(config)
    return config


DB = PostgresEngine(config=engine_config(), extensions=(), log_queries=False)

APP_REGISTRY = AppRegistry(apps=["tables.piccolo_app"])
