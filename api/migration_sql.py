"""The one runner for hand-written migrations: raw statements in the migration's transaction.

A new hand-written migration declares `ID`, `VERSION`, `DESCRIPTION` and its `STATEMENTS`,
then `forwards = sql_migration(ID, DESCRIPTION, STATEMENTS)`. Migrations applied before this
helper existed keep their own copy of the runner (applied migrations are never edited).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table


class _RawSQL(Table):
    """A handle for running raw statements inside the migration's transaction."""


def sql_migration(
    migration_id: str, description: str, statements: Sequence[str], app_name: str = "marketedge"
) -> Callable[[], Awaitable[MigrationManager]]:
    """A migration's `forwards`: run `statements` in order, all in its one transaction."""

    async def forwards() -> MigrationManager:
        manager = MigrationManager(
            migration_id=migration_id, app_name=app_name, description=description
        )

        async def run() -> None:
            for statement in statements:
                await _RawSQL.raw(statement)

        manager.add_raw(run)
        return manager

    return forwards
