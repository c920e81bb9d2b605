"""Hand-written: hierarchy invariants every writer keeps, versions, and scoped delegation.

- One organization per e-mail domain: a trigger takes the same lock as the API and refuses
  an overlap with `unique_violation` on the named constraint `organization_domains_unique`.
- `version` on nodes, assignments, permission overrides and users moves on every real
  change and on none else: an UPDATE that changes nothing (Piccolo Admin's `SET id = id`
  after a no-op save) keeps `version` and `updated_at`, and notifies nobody.
- Revoking or deleting a permission override ends what was granted on its strength
  (`derived_from`); shortening it shortens those grants with it.
"""

from api.migration_sql import sql_migration

ID = "2026-12-02T16:49:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "Domain claims and versions in the database; derived grants end with their source"

VERSIONED = {
    "organization_hierarchy": "'path', 'full_name'",
    "user_hierarchy_assignments": "",
    "hierarchy_permission_overrides": "",
    "users": "'last_login_at'",
}

STATEMENTS = [
    """
    CREATE FUNCTION organization_domains_unique() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF cardinality(NEW.email_domains) = 0 THEN
            RETURN NEW;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtext('organization-domains'));
        IF EXISTS (SELECT 1 FROM organization_hierarchy
                   WHERE id <> NEW.id AND email_domains && NEW.email_domains) THEN
            RAISE EXCEPTION 'an e-mail domain of node % is claimed by another organization',
                NEW.id USING ERRCODE = 'unique_violation',
                CONSTRAINT = 'organization_domains_unique';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER organization_domains_unique BEFORE INSERT OR UPDATE OF email_domains
    ON organization_hierarchy FOR EACH ROW EXECUTE FUNCTION organization_domains_unique()
    """,
    """
    CREATE FUNCTION bump_version_on_change() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        ignored text[] := TG_ARGV || ARRAY['version', 'updated_at', 'created_at'];
    BEGIN
        IF to_jsonb(NEW) - ignored = to_jsonb(OLD) - ignored THEN
            NEW.version := OLD.version;
            IF to_jsonb(NEW) - 'updated_at' = to_jsonb(OLD) - 'updated_at' THEN
                NEW.updated_at := OLD.updated_at;  -- nothing at all changed
            END IF;
        ELSIF NEW.version = OLD.version THEN
            NEW.version := OLD.version + 1;
        END IF;
        RETURN NEW;
    END
    $$
    """,
    *[
        f"""
        CREATE TRIGGER {table}_version BEFORE UPDATE ON {table}
        FOR EACH ROW EXECUTE FUNCTION bump_version_on_change({ignored})
        """
        for table, ignored in VERSIONED.items()
    ],
    # Notices for changes only: a row-level WHEN, since a statement trigger cannot tell.
    "DROP TRIGGER hierarchy_me_changed ON organization_hierarchy",
    """
    CREATE TRIGGER hierarchy_me_changed AFTER UPDATE ON organization_hierarchy
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION notify_me_changed_for_everyone()
    """,
    """
    CREATE TRIGGER hierarchy_me_changed_deleted AFTER DELETE ON organization_hierarchy
    FOR EACH STATEMENT EXECUTE FUNCTION notify_me_changed_for_everyone()
    """,
    "DROP TRIGGER assignments_changed_targeting ON user_hierarchy_assignments",
    """
    CREATE TRIGGER assignments_changed_targeting AFTER INSERT OR DELETE
    ON user_hierarchy_assignments FOR EACH STATEMENT
    EXECUTE FUNCTION notify_feature_flags_changed()
    """,
    """
    CREATE TRIGGER assignments_updated_targeting AFTER UPDATE ON user_hierarchy_assignments
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION notify_feature_flags_changed()
    """,
    *[
        statement
        for table, trigger, function, events in (
            (
                "user_hierarchy_assignments",
                "assignments_me_changed",
                "notify_me_changed_for_user",
                "INSERT OR DELETE",
            ),
            (
                "hierarchy_permission_overrides",
                "permission_overrides_me_changed",
                "notify_me_changed_for_user",
                "INSERT OR DELETE",
            ),
            ("users", "users_me_changed", "notify_me_changed_for_row_id", "DELETE"),
        )
        for statement in (
            f"DROP TRIGGER {trigger} ON {table}",
            f"""
            CREATE TRIGGER {trigger} AFTER {events} ON {table}
            FOR EACH ROW EXECUTE FUNCTION {function}()
            """,
            f"""
            CREATE TRIGGER {trigger}_updated AFTER UPDATE ON {table}
            FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION {function}()
            """,
        )
    ],
    """
    CREATE FUNCTION end_derived_grants() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' OR NOT NEW.granted THEN
            DELETE FROM hierarchy_permission_overrides WHERE derived_from @> ARRAY[OLD.id];
            DELETE FROM user_hierarchy_assignments WHERE derived_from @> ARRAY[OLD.id];
        ELSIF NEW.expires_at IS NOT NULL THEN
            UPDATE hierarchy_permission_overrides SET expires_at = NEW.expires_at
             WHERE derived_from @> ARRAY[NEW.id]
               AND (expires_at IS NULL OR expires_at > NEW.expires_at);
            DELETE FROM user_hierarchy_assignments WHERE derived_from @> ARRAY[NEW.id];
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER permission_overrides_end_derived AFTER DELETE ON hierarchy_permission_overrides
    FOR EACH ROW EXECUTE FUNCTION end_derived_grants()
    """,
    """
    CREATE TRIGGER permission_overrides_narrow_derived AFTER UPDATE OF granted, expires_at
    ON hierarchy_permission_overrides FOR EACH ROW
    WHEN (OLD.granted IS DISTINCT FROM NEW.granted OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION end_derived_grants()
    """,
]

forwards = sql_migration(ID, DESCRIPTION, STATEMENTS)
