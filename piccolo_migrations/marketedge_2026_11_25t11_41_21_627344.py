from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Text
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-25T11:41:21:627344"
VERSION = "1.38.0"
DESCRIPTION = ""


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="marketedge", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="HierarchyNode",
        tablename="organization_hierarchy",
        column_name="full_name",
        db_column_name="full_name",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 700,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="AuditLog",
        tablename="audit_logs",
        column_name="changes",
        db_column_name="changes",
        column_class_name="Text",
        column_class=Text,
        params={
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.alter_column(
        table_class_name="HierarchyNode",
        tablename="organization_hierarchy",
        column_name="parent_id",
        db_column_name="parent_id",
        params={"verbose_name": "Parent", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "parent_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="UserHierarchyAssignment",
        tablename="user_hierarchy_assignments",
        column_name="user_id",
        db_column_name="user_id",
        params={"verbose_name": "User", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "user_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="UserHierarchyAssignment",
        tablename="user_hierarchy_assignments",
        column_name="node_id",
        db_column_name="node_id",
        params={"verbose_name": "Node", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "node_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="UserHierarchyAssignment",
        tablename="user_hierarchy_assignments",
        column_name="granted_by_id",
        db_column_name="granted_by_id",
        params={"verbose_name": "Granted by", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "granted_by_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="HierarchyPermissionOverride",
        tablename="hierarchy_permission_overrides",
        column_name="user_id",
        db_column_name="user_id",
        params={"verbose_name": "User", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "user_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="HierarchyPermissionOverride",
        tablename="hierarchy_permission_overrides",
        column_name="node_id",
        db_column_name="node_id",
        params={"verbose_name": "Node", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "node_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="HierarchyPermissionOverride",
        tablename="hierarchy_permission_overrides",
        column_name="granted_by_id",
        db_column_name="granted_by_id",
        params={"verbose_name": "Granted by", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "granted_by_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        column_name="created_by_id",
        db_column_name="created_by_id",
        params={"verbose_name": "Created by", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "created_by_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        column_name="updated_by_id",
        db_column_name="updated_by_id",
        params={"verbose_name": "Updated by", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "updated_by_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        column_name="flag_id",
        db_column_name="flag_id",
        params={"verbose_name": "Flag", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "flag_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        column_name="user_id",
        db_column_name="user_id",
        params={"verbose_name": "User", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "user_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        column_name="node_id",
        db_column_name="node_id",
        params={"verbose_name": "Node", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "node_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        column_name="created_by_id",
        db_column_name="created_by_id",
        params={"verbose_name": "Created by", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "created_by_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="AuditLog",
        tablename="audit_logs",
        column_name="actor_id",
        db_column_name="actor_id",
        params={"verbose_name": "Actor", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "actor_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    manager.alter_column(
        table_class_name="UserSession",
        tablename="user_sessions",
        column_name="user_id",
        db_column_name="user_id",
        params={"verbose_name": "User", "db_column_name": None},
        old_params={"verbose_name": None, "db_column_name": "user_id"},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )

    return manager
