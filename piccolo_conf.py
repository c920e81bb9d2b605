"""Piccolo's engine and app registry: Postgres through asyncpg, never SQLite.

`DATABASE_URL` selects the server; unset, an embedded Postgres under `.data/` is used.
Connect and statement timeouts are bounded so a sick database yields a fast 503, not a hang.
"""

import os

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

from api.platform.db.embedded_postgres import embedded_database_url

CONNECT_TIMEOUT_SECONDS = 1.5
STATEMENT_TIMEOUT_MS = 5000


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    return url or embedded_database_url(os.environ.get("EMBEDDED_PG_DATABASE", "marketedge"))


DB = PostgresEngine(
    config={
        "dsn": database_url(),
        "timeout": CONNECT_TIMEOUT_SECONDS,
        "command_timeout": STATEMENT_TIMEOUT_MS / 1000 + 1,
        "server_settings": {
            "statement_timeout": str(STATEMENT_TIMEOUT_MS),
            "application_name": "marketedge",
        },
    },
    extensions=(),
    log_queries=False,
)

APP_REGISTRY = AppRegistry(apps=["tables.piccolo_app"])
