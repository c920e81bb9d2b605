"""The release step (PRODUCT §7): migrate forwards before any new code serves (F1).

A Postgres advisory lock, held on its own connection, serializes concurrent releases; the
ones that wait then find nothing left to run. At head it is a no-op. Exit status 0 means the
schema is at least as new as this code.

The lock is a session-level feature, so its connection goes to `DATABASE_DIRECT_URL` when
set (a transaction-pooling PgBouncer would hand the session to another client); the
migrations themselves run through `DATABASE_URL`, the pooler.

It reads the database settings and nothing else: a migration job (Render's pre-deploy
command, a Kubernetes Job, a CI step) holds the database secret alone, never the web's
OIDC client secret.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import asyncpg

from api.platform.config import DatabaseSettings, SettingsError, load_database_settings
from api.platform.logging import configure_logging

logger = logging.getLogger("api.ops.release")

# Any fixed 64-bit number works; this one spells "mkedgrel" and must never change.
RELEASE_LOCK_KEY = 0x6D6B656467726576
LOCK_WAIT = "15min"


async def run_release(database: DatabaseSettings | None = None) -> bool:
    """Take the release lock, run every pending migration, report success."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from api.platform.db.sql import engine, use_transaction_pooler

    database = database or load_database_settings()
    if database.through_pooler:
        use_transaction_pooler(engine().config)
    dsn = database.database_direct_url or engine().config["dsn"]
    lock_connection = await asyncpg.connect(
        dsn, timeout=10, server_settings={"lock_timeout": LOCK_WAIT}
    )
    try:
        logger.info("waiting for the release lock")
        await lock_connection.execute("SELECT pg_advisory_lock($1)", RELEASE_LOCK_KEY)
        logger.info("release lock held; migrating forwards")
        result = await run_forwards("all")
        if not result.success:
            logger.error("migration failed: %s", result.message)
            return False
        from api.platform.db.readiness import check_schema

        status = await check_schema()
        if not status.ready:
            logger.error("schema still not ready after migrating: %s", status)
            return False
        logger.info("schema at head")
        return True
    finally:
        try:
            await lock_connection.execute("SELECT pg_advisory_unlock($1)", RELEASE_LOCK_KEY)
        finally:
            await lock_connection.close()


def main() -> None:
    configure_logging(json_lines=False)
    try:
        database = load_database_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    try:
        ok = asyncio.run(run_release(database))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        logger.error("release failed: %s: %s", type(exc).__name__, exc)
        sys.exit(1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
