"""Hand-written: carry overrides over to variants; triggers for the new flag tables.

- Every existing override names the boolean variant its `enabled` stood for.
- `feature_flags.rollout_changed_at` moves only when the rollout does, whoever writes it.
- Rules and segments notify `feature_flags_changed`, so every replica reloads them; so do
  the user and organisation fields that rules read (e-mail, a node's slug and settings),
  which evaluated results cached per user depend on.
- Rules, segments and scheduled changes are audited, timestamped and kept like the rest.
"""

from api.migration_sql import sql_migration

ID = "2026-11-25T13:38:40:000000"
VERSION = "1.38.0"
DESCRIPTION = "Overrides name variants; triggers for rules, segments and schedules"

AUDITED = {
    "segments": "segment",
    "feature_flag_rules": "feature_flag_rule",
    "feature_flag_schedules": "feature_flag_schedule",
}

STATEMENTS = [
    "UPDATE feature_flag_overrides SET variant = CASE WHEN enabled THEN 'on' ELSE 'off' END",
    """
    CREATE FUNCTION feature_flags_rollout_changed_at() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.rollout_percentage IS DISTINCT FROM OLD.rollout_percentage THEN
            NEW.rollout_changed_at := now();
        ELSE
            NEW.rollout_changed_at := OLD.rollout_changed_at;
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER feature_flags_rollout_changed BEFORE UPDATE ON feature_flags
    FOR EACH ROW EXECUTE FUNCTION feature_flags_rollout_changed_at()
    """,
    *[
        f"""
        CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION notify_feature_flags_changed()
        """
        for table in ("segments", "feature_flag_rules")
    ],
    """
    CREATE TRIGGER users_email_changed_flags AFTER UPDATE OF email ON users
    FOR EACH ROW WHEN (NEW.email IS DISTINCT FROM OLD.email)
    EXECUTE FUNCTION notify_feature_flags_changed()
    """,
    """
    CREATE TRIGGER hierarchy_targeting_changed_flags
    AFTER UPDATE OF slug, settings ON organization_hierarchy
    FOR EACH ROW WHEN (NEW.slug IS DISTINCT FROM OLD.slug
                       OR NEW.settings IS DISTINCT FROM OLD.settings)
    EXECUTE FUNCTION notify_feature_flags_changed()
    """,
    *[
        f"""
        CREATE CONSTRAINT TRIGGER {table}_audit AFTER INSERT OR UPDATE OR DELETE ON {table}
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_row_change('{kind}')
        """
        for table, kind in AUDITED.items()
    ],
    *[
        f"""
        CREATE TRIGGER {table}_timestamps BEFORE UPDATE ON {table}
        FOR EACH ROW EXECUTE FUNCTION keep_created_at_touch_updated_at()
        """
        for table in AUDITED
    ],
]

forwards = sql_migration(ID, DESCRIPTION, STATEMENTS)
