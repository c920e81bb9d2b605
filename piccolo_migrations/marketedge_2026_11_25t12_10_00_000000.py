"""Hand-written: notify `me_changed` when what GET /api/v1/auth/me describes changes.

Each process caches every user's encoded /me for a while and drops one user's entry on a
notice naming them (payload: the user id), or every entry on an empty payload (a node was
renamed or moved, which can change anyone's /me). Delivered at commit; Postgres folds
identical notices of one transaction into one.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T12:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Notify me_changed for per-user /me caches"

STATEMENTS = [
    """
    CREATE FUNCTION notify_me_changed_for_user() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('me_changed', OLD.user_id::text);
        ELSE
            PERFORM pg_notify('me_changed', NEW.user_id::text);
            IF TG_OP = 'UPDATE' AND NEW.user_id IS DISTINCT FROM OLD.user_id THEN
                PERFORM pg_notify('me_changed', OLD.user_id::text);
            END IF;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION notify_me_changed_for_everyone() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('me_changed', '');
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION notify_me_changed_for_row_id() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('me_changed', OLD.id::text);
        ELSE
            PERFORM pg_notify('me_changed', NEW.id::text);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER users_me_changed AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_me_changed_for_row_id()
    """,
    """
    CREATE TRIGGER assignments_me_changed
    AFTER INSERT OR UPDATE OR DELETE ON user_hierarchy_assignments
    FOR EACH ROW EXECUTE FUNCTION notify_me_changed_for_user()
    """,
    """
    CREATE TRIGGER permission_overrides_me_changed
    AFTER INSERT OR UPDATE OR DELETE ON hierarchy_permission_overrides
    FOR EACH ROW EXECUTE FUNCTION notify_me_changed_for_user()
    """,
    """
    CREATE TRIGGER hierarchy_me_changed AFTER UPDATE OR DELETE ON organization_hierarchy
    FOR EACH STATEMENT EXECUTE FUNCTION notify_me_changed_for_everyone()
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
