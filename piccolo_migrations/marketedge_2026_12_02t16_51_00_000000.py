"""Hand-written: an UPDATE of a flag table that changes nothing is nothing.

Piccolo Admin answers a save that changes nothing with `UPDATE t SET id = id`; a psql
session may do the same. Such an update must not bump a version (another editor would get
a false 409), touch `updated_at`, or NOTIFY `feature_flags_changed` (every replica would
reload its flags). So, for the flag tables:
- the timestamp and version triggers run only `WHEN (OLD.* IS DISTINCT FROM NEW.*)`;
- targeting rules and segments get the same version trigger as flags (the column is new);
- the NOTIFY fires per statement for inserts and deletes, and per row for updates that
  change the row (pg_notify sends one notice per transaction for the same payload).
The audit triggers already record only real changes.
"""

from api.migration_sql import sql_migration

ID = "2026-12-02T16:51:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Flag tables: an update that changes nothing bumps, touches and notifies nothing"

TOUCHED = {
    "feature_flags": "keep_created_at_touch_updated_at",
    "feature_flag_overrides": "keep_created_at",
    "segments": "keep_created_at_touch_updated_at",
    "feature_flag_rules": "keep_created_at_touch_updated_at",
}
NOTIFYING = ("feature_flags", "feature_flag_overrides", "segments", "feature_flag_rules")
VERSIONED = ("segments", "feature_flag_rules")

STATEMENTS = [
    *[
        statement
        for table, function in TOUCHED.items()
        for statement in (
            f"DROP TRIGGER {table}_timestamps ON {table}",
            f"""
            CREATE TRIGGER {table}_timestamps BEFORE UPDATE ON {table}
            FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
            EXECUTE FUNCTION {function}()
            """,
        )
    ],
    "DROP TRIGGER feature_flags_version ON feature_flags",
    """
    CREATE TRIGGER feature_flags_version BEFORE UPDATE ON feature_flags
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION feature_flags_bump_version()
    """,
    *[
        f"""
        CREATE TRIGGER {table}_version BEFORE UPDATE ON {table}
        FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
        EXECUTE FUNCTION feature_flags_bump_version()
        """
        for table in VERSIONED
    ],
    *[
        statement
        for table in NOTIFYING
        for statement in (
            f"DROP TRIGGER {table}_changed ON {table}",
            f"""
            CREATE TRIGGER {table}_changed AFTER INSERT OR DELETE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION notify_feature_flags_changed()
            """,
            f"""
            CREATE TRIGGER {table}_updated AFTER UPDATE ON {table}
            FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
            EXECUTE FUNCTION notify_feature_flags_changed()
            """,
        )
    ],
]

forwards = sql_migration(ID, DESCRIPTION, STATEMENTS)
