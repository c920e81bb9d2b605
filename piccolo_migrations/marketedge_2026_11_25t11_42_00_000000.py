"""Hand-written: deactivation ends sessions for every writer; the audit trail misses nothing.

- A user whose `is_active` turns false loses every session, whoever made the change (the
  API, Piccolo Admin, psql): the rows are deleted, which notifies `sessions_changed`, so
  every replica drops its session cache at commit. Reactivation brings no session back.
- A user who stops being an active super-admin has their Piccolo Admin mirror row
  (`admin_users`, username `oidc-user-<id>`) switched off, so Piccolo Admin's own checks
  refuse it too; becoming an active super-admin again switches it back on.
- `audit_row_change` no longer stands aside for a whole transaction when the app writes its
  own record (`app.audit_by_app` is gone). The app names each row it describes in the
  transaction-local `app.audited_rows` (api/audit.py `record_audit`; by id, or a flag
  by its key); every other row change
  in the transaction is recorded by the trigger, e.g. the `is_primary` side effect on a
  user's other assignments. An UPDATE that changes nothing but bookkeeping timestamps
  (`updated_at`, `last_login_at`) is not recorded.
- `users` is audited for every column (names and e-mail included) and for inserts and
  deletes, not only access fields.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T11:42:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Deactivation deletes sessions; audit every row change the app did not record"

STATEMENTS = [
    """
    CREATE FUNCTION users_end_access() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.is_active AND NOT NEW.is_active THEN
            DELETE FROM user_sessions WHERE user_id = NEW.id;
        END IF;
        IF (OLD.is_active AND OLD.is_super_admin)
           AND NOT (NEW.is_active AND NEW.is_super_admin) THEN
            UPDATE admin_users SET active = false, admin = false, superuser = false
            WHERE username = 'oidc-user-' || NEW.id;
        ELSIF (NEW.is_active AND NEW.is_super_admin)
              AND NOT (OLD.is_active AND OLD.is_super_admin) THEN
            UPDATE admin_users SET active = true, admin = true, superuser = true
            WHERE username = 'oidc-user-' || NEW.id;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER users_end_access AFTER UPDATE OF is_active, is_super_admin ON users
    FOR EACH ROW WHEN (NEW.is_active IS DISTINCT FROM OLD.is_active
        OR NEW.is_super_admin IS DISTINCT FROM OLD.is_super_admin)
    EXECUTE FUNCTION users_end_access()
    """,
    """
    CREATE OR REPLACE FUNCTION audit_row_change() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        row_id text;
        before_row jsonb;
        after_row jsonb;
        recorded text;
    BEGIN
        row_id := CASE WHEN TG_OP = 'DELETE' THEN OLD.id::text ELSE NEW.id::text END;
        before_row := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
        after_row := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
        recorded := coalesce(current_setting('app.audited_rows', true), '');
        -- The app names a row by its id, or a flag by its key.
        IF position('|' || TG_ARGV[0] || ':' || row_id || '|' IN recorded) > 0
           OR position('|' || TG_ARGV[0] || ':' || (coalesce(after_row, before_row) ->> 'key')
                       || '|' IN recorded) > 0 THEN
            RETURN NULL;  -- the app recorded this very row in this transaction
        END IF;
        IF TG_OP = 'UPDATE' AND before_row - 'updated_at' - 'last_login_at'
                                = after_row - 'updated_at' - 'last_login_at' THEN
            RETURN NULL;
        END IF;
        INSERT INTO audit_logs (actor_id, actor_email, action, resource_type, resource_id,
                                before, after, request_id, client_ip)
        VALUES (
            nullif(current_setting('app.actor_id', true), '')::int,
            nullif(current_setting('app.actor_email', true), ''),
            TG_ARGV[0] || '.' || lower(TG_OP),
            TG_ARGV[0],
            row_id,
            before_row,
            after_row,
            nullif(current_setting('app.request_id', true), ''),
            nullif(current_setting('app.client_ip', true), '')
        );
        RETURN NULL;
    END
    $$
    """,
    "DROP TRIGGER users_audit ON users",
    """
    CREATE CONSTRAINT TRIGGER users_audit AFTER INSERT OR UPDATE OR DELETE ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_row_change('user')
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
