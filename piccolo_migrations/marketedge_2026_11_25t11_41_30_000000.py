"""Hand-written: what people read in the admin is kept by the database, for every writer.

- `organization_hierarchy.full_name` ("Acme Retail / Paris / Analytics") is set by the path
  trigger from the parent's full name, and rewritten down the subtree on a rename or move.
- `audit_logs.changes` ("enabled: true → false", one field a line) is set on insert from
  before/after, whoever writes the record.
- `created_at` never changes after insert and `updated_at` is the time of the last update:
  a form that sends timestamps back cut to whole seconds can no longer rewrite history.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T11:41:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "Node full names, readable audit changes, database-owned timestamps"

WITH_UPDATED_AT = [
    "users",
    "organization_hierarchy",
    "user_hierarchy_assignments",
    "hierarchy_permission_overrides",
    "feature_flags",
]
CREATED_AT_ONLY = [
    "feature_flag_overrides",
    "user_sessions",
    "oidc_login_states",
    "super_admin_grants",
]

STATEMENTS = [
    """
    CREATE OR REPLACE FUNCTION hierarchy_set_path() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        parent_path integer[];
        parent_full_name text;
    BEGIN
        IF NEW.parent_id IS NULL THEN
            NEW.path := ARRAY[NEW.id];
            NEW.full_name := NEW.name;
        ELSE
            SELECT path, full_name INTO parent_path, parent_full_name
            FROM organization_hierarchy WHERE id = NEW.parent_id;
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
            NEW.full_name := parent_full_name || ' / ' || NEW.name;
        END IF;
        RETURN NEW;
    END
    $$
    """,
    "DROP TRIGGER hierarchy_path_cascade ON organization_hierarchy",
    """
    CREATE TRIGGER hierarchy_path_cascade
    AFTER UPDATE ON organization_hierarchy
    FOR EACH ROW WHEN (OLD.path IS DISTINCT FROM NEW.path
        OR OLD.full_name IS DISTINCT FROM NEW.full_name)
    EXECUTE FUNCTION hierarchy_cascade_path()
    """,
    # Roots first, so each child reads its parent's new full name.
    """
    UPDATE organization_hierarchy SET name = name WHERE parent_id IS NULL
    """,
    """
    CREATE FUNCTION audit_value(value jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE
            WHEN value IS NULL OR value = 'null'::jsonb THEN '∅'
            WHEN jsonb_typeof(value) = 'string' THEN left(value #>> ARRAY[]::text[], 200)
            ELSE left(value::text, 200)
        END
    $$
    """,
    """
    CREATE FUNCTION audit_describe_changes(old_row jsonb, new_row jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
        WITH fields AS (
            SELECT jsonb_object_keys(CASE WHEN jsonb_typeof(old_row) = 'object'
                                          THEN old_row ELSE jsonb_build_object() END) AS field
            UNION
            SELECT jsonb_object_keys(CASE WHEN jsonb_typeof(new_row) = 'object'
                                          THEN new_row ELSE jsonb_build_object() END)
        )
        SELECT coalesce(string_agg(
            CASE
                WHEN old_row IS NULL THEN field || ': ' || audit_value(new_row -> field)
                WHEN new_row IS NULL THEN field || ': ' || audit_value(old_row -> field)
                    || ' → (deleted)'
                ELSE field || ': ' || audit_value(old_row -> field) || ' → '
                    || audit_value(new_row -> field)
            END, E'\n' ORDER BY field), '')
        FROM fields
        WHERE field NOT IN ('created_at', 'updated_at', 'path')
          AND (old_row -> field) IS DISTINCT FROM (new_row -> field)
          AND NOT (old_row IS NULL AND coalesce(new_row -> field, 'null') = 'null'::jsonb)
    $$
    """,
    """
    CREATE FUNCTION audit_logs_describe() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.changes := audit_describe_changes(NEW.before, NEW.after);
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_logs_describe BEFORE INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_describe()
    """,
    # The record of the past is derived, not rewritten: only the new column is filled in.
    "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only",
    "UPDATE audit_logs SET changes = audit_describe_changes(before, after)",
    "ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only",
    """
    CREATE FUNCTION keep_created_at() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.created_at := OLD.created_at;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE FUNCTION keep_created_at_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.created_at := OLD.created_at;
        NEW.updated_at := now();
        RETURN NEW;
    END
    $$
    """,
    *[
        f"""
        CREATE TRIGGER {table}_timestamps BEFORE UPDATE ON {table}
        FOR EACH ROW EXECUTE FUNCTION keep_created_at_touch_updated_at()
        """
        for table in WITH_UPDATED_AT
    ],
    *[
        f"""
        CREATE TRIGGER {table}_timestamps BEFORE UPDATE ON {table}
        FOR EACH ROW EXECUTE FUNCTION keep_created_at()
        """
        for table in CREATED_AT_ONLY
    ],
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
