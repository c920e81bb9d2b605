"""Parameterised SQL on Piccolo's engine, for the queries the ORM cannot say in one trip.

Statements join the current Piccolo transaction when there is one, so a domain operation
and its audit record commit or fail together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine


@cache
def engine() -> PostgresEngine:
    """piccolo_conf's engine, looked up once (every query of the hot path asks for it)."""
    found = engine_finder()
    assert isinstance(found, PostgresEngine)
    return found


@asynccontextmanager
async def connection_pool(max_size: int = 2) -> AsyncIterator[None]:
    """The engine's pool for the length of a command (entry points other than the web
    process, which opens its own in the lifespan)."""
    db = engine()
    await db.start_connection_pool(min_size=0, max_size=max_size)
    try:
        yield
    finally:
        await db.close_connection_pool()


@asynccontextmanager
async def savepoint() -> AsyncIterator[None]:
    """Inside a transaction: if the block raises, its writes (and `set_config`s) are undone
    and the transaction goes on; the exception still propagates."""
    transaction: Any = engine().current_transaction.get()
    assert transaction is not None, "a savepoint needs an enclosing transaction"
    point = await transaction.savepoint()
    try:
        yield
    except BaseException:
        await point.rollback_to()
        raise
    await point.release()


def use_transaction_pooler(config: dict[str, Any]) -> None:
    """Make asyncpg's connection settings safe behind a transaction-pooling PgBouncer (1.18):
    no named prepared statements kept across transactions, and no `statement_timeout`
    startup parameter (PgBouncer refuses unknown ones; set it on the role instead, and
    asyncpg's `command_timeout` still bounds every statement)."""
    config["statement_cache_size"] = 0
    server_settings = dict(config.get("server_settings") or {})
    server_settings.pop("statement_timeout", None)
    config["server_settings"] = server_settings


async def fetch(sql: str, *args: Any) -> list[Any]:
    """Run one statement with $n parameters; returns asyncpg records."""
    db: Any = engine()
    transaction = db.current_transaction.get()
    if transaction is not None:
        return list(await transaction.connection.fetch(sql, *args))
    if db.pool is not None:
        async with db.pool.acquire() as connection:
            return list(await connection.fetch(sql, *args))
    connection = await db.get_new_connection()
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()
