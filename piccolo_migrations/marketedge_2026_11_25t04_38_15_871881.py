"""Hand-written: notices that let each process cache sessions and evaluated flags safely.

- `sessions_changed`: a session ended or was cut short, or a user was deactivated,
  demoted or renamed. Processes drop their session cache.
- `feature_flags_changed` (already sent for flags and overrides): also when assignments
  change or a node moves, since both change what a user's flags evaluate to.
Statement-level triggers, delivered at commit.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T04:38:15:871881"
VERSION = "1.38.0"
DESCRIPTION = "Notify sessions_changed and targeting changes for process caches"

STATEMENTS = [
    """
    CREATE FUNCTION notify_sessions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('sessions_changed', TG_TABLE_NAME);
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER user_sessions_ended AFTER DELETE ON user_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION notify_sessions_changed()
    """,
    """
    CREATE TRIGGER user_sessions_shortened AFTER UPDATE ON user_sessions
    FOR EACH ROW WHEN (NEW.expires_at < OLD.expires_at OR NEW.last_seen_at < OLD.last_seen_at)
    EXECUTE FUNCTION notify_sessions_changed()
    """,
    """
    CREATE TRIGGER users_access_changed AFTER UPDATE ON users
    FOR EACH ROW WHEN (NEW.is_active IS DISTINCT FROM OLD.is_active
        OR NEW.is_super_admin IS DISTINCT FROM OLD.is_super_admin
        OR NEW.email IS DISTINCT FROM OLD.email)
    EXECUTE FUNCTION notify_sessions_changed()
    """,
    """
    CREATE TRIGGER users_deleted AFTER DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_sessions_changed()
    """,
    """
    CREATE TRIGGER assignments_changed_targeting
    AFTER INSERT OR UPDATE OR DELETE ON user_hierarchy_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION notify_feature_flags_changed()
    """,
    """
    CREATE TRIGGER hierarchy_moved_targeting AFTER UPDATE OF parent_id ON organization_hierarchy
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
