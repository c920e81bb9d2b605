"""Hand-written: an audit trail that no writer can bypass, and flag versions that always move.

Every row change to users (access fields), feature flags and their overrides, nodes,
assignments and permission overrides is written to audit_logs by a deferred constraint
trigger, with the actor taken from the transaction's `app.actor_id` / `app.actor_email` /
`app.request_id` / `app.client_ip` settings (NULL when unset, e.g. psql). Deferred to commit,
so that the API — which writes its own, more meaningful audit record and says so by setting
`app.audit_by_app` in the same transaction — is not recorded twice. Piccolo Admin's writes
run in a transaction carrying the super-admin's identity (api/admin/mount.py).
A flag updated without bumping `version` (the admin, psql) gets it bumped, so optimistic
concurrency in the API also sees those edits.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T04:57:26:417463"
VERSION = "1.38.0"
DESCRIPTION = "Audit triggers nothing can bypass; flag versions bump on every update"

AUDITED = {
    "feature_flags": "feature_flag",
    "feature_flag_overrides": "feature_flag_override",
    "organization_hierarchy": "node",
    "user_hierarchy_assignments": "assignment",
    "hierarchy_permission_overrides": "permission_override",
}

STATEMENTS = [
    """
    CREATE FUNCTION audit_row_change() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        row_id text;
    BEGIN
        IF coalesce(current_setting('app.audit_by_app', true), '') = 'on' THEN
            RETURN NULL;
        END IF;
        row_id := CASE WHEN TG_OP = 'DELETE' THEN OLD.id::text ELSE NEW.id::text END;
        INSERT INTO audit_logs (actor_id, actor_email, action, resource_type, resource_id,
                                before, after, request_id, client_ip)
        VALUES (
            nullif(current_setting('app.actor_id', true), '')::int,
            nullif(current_setting('app.actor_email', true), ''),
            TG_ARGV[0] || '.' || lower(TG_OP),
            TG_ARGV[0],
            row_id,
            CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END,
            CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END,
            nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_ip', true), '')
        );
        RETURN NULL;
    END
    $$
    """,
    *[
        f"""
        CREATE CONSTRAINT TRIGGER {table}_audit AFTER INSERT OR UPDATE OR DELETE ON {table}
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_row_change('{kind}')
        """
        for table, kind in AUDITED.items()
    ],
    """
    CREATE CONSTRAINT TRIGGER users_audit AFTER UPDATE ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.is_active IS DISTINCT FROM OLD.is_active
          OR NEW.is_super_admin IS DISTINCT FROM OLD.is_super_admin
          OR NEW.name IS DISTINCT FROM OLD.name)
    EXECUTE FUNCTION audit_row_change('user')
    """,
    """
    CREATE FUNCTION feature_flags_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.version = OLD.version THEN
            NEW.version := OLD.version + 1;
            NEW.updated_at := now();
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER feature_flags_version BEFORE UPDATE ON feature_flags
    FOR EACH ROW EXECUTE FUNCTION feature_flags_bump_version()
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
