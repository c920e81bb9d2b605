"""Foreign-key attributes take their column's name (`user` on column `user_id` becomes
`user_id`), the shape Piccolo Admin handles natively: see tables/ and issue 10.

The database has nothing to do: each column keeps its name. Piccolo would still run
`RENAME COLUMN user_id TO user_id`, which Postgres refuses, so this manager records the
renames for the migration snapshot and skips only the no-op SQL.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager


class SnapshotOnlyRenames(MigrationManager):
    async def _run_rename_columns(self, backwards: bool = False) -> None:
        renames = [
            rename
            for name in self.rename_columns.table_class_names
            for rename in self.rename_columns.for_table_class_name(name)
        ]
        assert all(r.old_db_column_name == r.new_db_column_name for r in renames)

ID = "2026-11-25T11:39:53:959317"
VERSION = "1.38.0"
DESCRIPTION = "Name foreign-key attributes after their columns"


async def forwards():
    manager = SnapshotOnlyRenames(
        migration_id=ID, app_name="marketedge", description=DESCRIPTION
    )

    manager.rename_column(
        table_class_name="HierarchyNode",
        tablename="organization_hierarchy",
        old_column_name="parent",
        new_column_name="parent_id",
        old_db_column_name="parent_id",
        new_db_column_name="parent_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="UserHierarchyAssignment",
        tablename="user_hierarchy_assignments",
        old_column_name="granted_by",
        new_column_name="granted_by_id",
        old_db_column_name="granted_by_id",
        new_db_column_name="granted_by_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="UserHierarchyAssignment",
        tablename="user_hierarchy_assignments",
        old_column_name="node",
        new_column_name="node_id",
        old_db_column_name="node_id",
        new_db_column_name="node_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="UserHierarchyAssignment",
        tablename="user_hierarchy_assignments",
        old_column_name="user",
        new_column_name="user_id",
        old_db_column_name="user_id",
        new_db_column_name="user_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="HierarchyPermissionOverride",
        tablename="hierarchy_permission_overrides",
        old_column_name="granted_by",
        new_column_name="granted_by_id",
        old_db_column_name="granted_by_id",
        new_db_column_name="granted_by_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="HierarchyPermissionOverride",
        tablename="hierarchy_permission_overrides",
        old_column_name="node",
        new_column_name="node_id",
        old_db_column_name="node_id",
        new_db_column_name="node_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="HierarchyPermissionOverride",
        tablename="hierarchy_permission_overrides",
        old_column_name="user",
        new_column_name="user_id",
        old_db_column_name="user_id",
        new_db_column_name="user_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        old_column_name="created_by",
        new_column_name="created_by_id",
        old_db_column_name="created_by_id",
        new_db_column_name="created_by_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        old_column_name="updated_by",
        new_column_name="updated_by_id",
        old_db_column_name="updated_by_id",
        new_db_column_name="updated_by_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        old_column_name="created_by",
        new_column_name="created_by_id",
        old_db_column_name="created_by_id",
        new_db_column_name="created_by_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        old_column_name="flag",
        new_column_name="flag_id",
        old_db_column_name="flag_id",
        new_db_column_name="flag_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        old_column_name="node",
        new_column_name="node_id",
        old_db_column_name="node_id",
        new_db_column_name="node_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        old_column_name="user",
        new_column_name="user_id",
        old_db_column_name="user_id",
        new_db_column_name="user_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="AuditLog",
        tablename="audit_logs",
        old_column_name="actor",
        new_column_name="actor_id",
        old_db_column_name="actor_id",
        new_db_column_name="actor_id",
        schema=None,
    )

    manager.rename_column(
        table_class_name="UserSession",
        tablename="user_sessions",
        old_column_name="user",
        new_column_name="user_id",
        old_db_column_name="user_id",
        new_db_column_name="user_id",
        schema=None,
    )

    return manager
