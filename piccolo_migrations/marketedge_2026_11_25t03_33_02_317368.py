"""Hand-written: what Piccolo's auto-migrations cannot express (STACK_NOTES, Migrations).

- organization_hierarchy.path is maintained by triggers: set from the parent on insert and
  on any update, cascaded to the subtree when it changes, and a move under one's own
  descendant is refused (no cycles), whoever writes (API, admin, psql).
- audit_logs is append-only: UPDATE and DELETE are refused, except the ON DELETE SET NULL
  of its actor foreign key.
- at most one primary assignment per user; composite indexes for the audit trail.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T03:33:02:317368"
VERSION = "1.38.0"
DESCRIPTION = "Hierarchy path triggers, append-only audit log, partial and composite indexes"

STATEMENTS = [
    """
    CREATE FUNCTION hierarchy_set_path() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        parent_path integer[];
    BEGIN
        IF NEW.parent_id IS NULL THEN
            NEW.path := ARRAY[NEW.id];
        ELSE
            SELECT path INTO parent_path FROM organization_hierarchy WHERE id = NEW.parent_id;
            IF parent_path IS NULL THEN
                RAISE EXCEPTION 'parent node % does not exist', NEW.parent_id
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            IF NEW.id = ANY(parent_path) THEN
                RAISE EXCEPTION 'node % cannot move under its own descendant %',
                    NEW.id, NEW.parent_id
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'hierarchy_no_cycles';
            END IF;
            NEW.path := parent_path || NEW.id;
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE FUNCTION hierarchy_cascade_path() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE organization_hierarchy SET path = path WHERE parent_id = NEW.id;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER hierarchy_path_before_write
    BEFORE INSERT OR UPDATE ON organization_hierarchy
    FOR EACH ROW EXECUTE FUNCTION hierarchy_set_path()
    """,
    """
    CREATE TRIGGER hierarchy_path_cascade
    AFTER UPDATE ON organization_hierarchy
    FOR EACH ROW WHEN (OLD.path IS DISTINCT FROM NEW.path)
    EXECUTE FUNCTION hierarchy_cascade_path()
    """,
    """
    CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
           AND to_jsonb(OLD) - 'actor_id' = to_jsonb(NEW) - 'actor_id' THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_logs is append-only' USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_logs_append_only
    BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()
    """,
    """
    CREATE UNIQUE INDEX assignments_one_primary_per_user
    ON user_hierarchy_assignments (user_id) WHERE is_primary
    """,
    """
    CREATE INDEX audit_logs_resource_time
    ON audit_logs (resource_type, resource_id, occurred_at DESC)
    """,
    """
    CREATE INDEX user_sessions_user_expiry ON user_sessions (user_id, expires_at)
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
