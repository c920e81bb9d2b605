"""Parameterised SQL on Piccolo's engine, for the queries the ORM cannot say in one trip.

Statements join the current Piccolo transaction when there is one, so a domain operation
and its audit record commit or fail together.
"""

from __future__ import annotations

from typing import Any

from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine


def engine() -> PostgresEngine:
    found = engine_finder()
    assert isinstance(found, PostgresEngine)
    return found


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
