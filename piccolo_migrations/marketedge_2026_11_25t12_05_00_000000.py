"""Hand-written: the admin's mirror rows are named by the person's e-mail (issue 10), so the
trigger that switches a mirror off on demotion or deactivation finds it by that name too,
as well as by the `oidc-user-<id>` name of rows made before."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T12:05:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Find the admin mirror of a user by e-mail as well"

STATEMENTS = [
    """
    CREATE OR REPLACE FUNCTION users_end_access() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.is_active AND NOT NEW.is_active THEN
            DELETE FROM user_sessions WHERE user_id = NEW.id;
        END IF;
        IF (OLD.is_active AND OLD.is_super_admin)
           AND NOT (NEW.is_active AND NEW.is_super_admin) THEN
            UPDATE admin_users SET active = false, admin = false, superuser = false
            WHERE username IN ('oidc-user-' || NEW.id, OLD.email, NEW.email);
        ELSIF (NEW.is_active AND NEW.is_super_admin)
              AND NOT (OLD.is_active AND OLD.is_super_admin) THEN
            UPDATE admin_users SET active = true, admin = true, superuser = true
            WHERE username IN ('oidc-user-' || NEW.id, NEW.email);
        END IF;
        RETURN NULL;
    END
    $$
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
