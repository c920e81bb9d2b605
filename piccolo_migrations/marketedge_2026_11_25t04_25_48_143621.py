"""Hand-written: notify every replica when flags or flag overrides change.

Each process LISTENs on `feature_flags_changed` and reloads its flag cache (api/flags/store).
A statement-level trigger, so a bulk write sends one notice, delivered at commit.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T04:25:48:143621"
VERSION = "1.38.0"
DESCRIPTION = "Notify feature_flags_changed on writes to the flag tables"

STATEMENTS = [
    """
    CREATE FUNCTION notify_feature_flags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('feature_flags_changed', TG_TABLE_NAME);
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER feature_flags_changed AFTER INSERT OR UPDATE OR DELETE ON feature_flags
    FOR EACH STATEMENT EXECUTE FUNCTION notify_feature_flags_changed()
    """,
    """
    CREATE TRIGGER feature_flag_overrides_changed
    AFTER INSERT OR UPDATE OR DELETE ON feature_flag_overrides
    FOR EACH STATEMENT EXECUTE FUNCTION notify_feature_flags_changed()
    """,
]


class RawSQL(Table):
    """A handle for running raw statements inside the migration's transaction."""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="marketedge", description=DESCRIPTION)

    async def run() -> None:
        for statement in STATEMENTS:
            await RawSQL.raw(statement)

    manager.add_raw(run)
    return manager
