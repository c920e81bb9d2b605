from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Array
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check

ID = "2026-12-02T16:49:17:854397"
VERSION = "1.38.0"
DESCRIPTION = ""


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="marketedge", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="User",
        tablename="users",
        column_name="version",
        db_column_name="version",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 1,
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
        table_class_name="HierarchyNode",
        tablename="organization_hierarchy",
        column_name="managed_settings",
        db_column_name="managed_settings",
        column_class_name="Array",
        column_class=Array,
        params={
            "default": list,
            "base_column": Varchar(
                length=100,
                default="",
                null=False,
                primary_key=False,
                unique=False,
                index=False,
                index_method=IndexMethod.btree,
                choices=None,
                db_column_name=None,
                secret=False,
            ),
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
        table_class_name="HierarchyNode",
        tablename="organization_hierarchy",
        column_name="version",
        db_column_name="version",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 1,
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
        table_class_name="UserHierarchyAssignment",
        tablename="user_hierarchy_assignments",
        column_name="derived_from",
        db_column_name="derived_from",
        column_class_name="Array",
        column_class=Array,
        params={
            "default": list,
            "base_column": Integer(
                default=0,
                null=False,
                primary_key=False,
                unique=False,
                index=False,
                index_method=IndexMethod.btree,
                choices=None,
                db_column_name=None,
                secret=False,
            ),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.gin,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="UserHierarchyAssignment",
        tablename="user_hierarchy_assignments",
        column_name="version",
        db_column_name="version",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 1,
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
        table_class_name="HierarchyPermissionOverride",
        tablename="hierarchy_permission_overrides",
        column_name="derived_from",
        db_column_name="derived_from",
        column_class_name="Array",
        column_class=Array,
        params={
            "default": list,
            "base_column": Integer(
                default=0,
                null=False,
                primary_key=False,
                unique=False,
                index=False,
                index_method=IndexMethod.btree,
                choices=None,
                db_column_name=None,
                secret=False,
            ),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.gin,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="HierarchyPermissionOverride",
        tablename="hierarchy_permission_overrides",
        column_name="version",
        db_column_name="version",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 1,
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

    manager.add_constraint(
        table_class_name="HierarchyNode",
        tablename="organization_hierarchy",
        constraint_name="hierarchy_managed_settings_only_on_organizations",
        constraint_class=Check,
        params={
            "condition": "level = 'organization' OR cardinality(managed_settings) = 0"
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="HierarchyNode",
        tablename="organization_hierarchy",
        constraint_name="hierarchy_settings_object",
        constraint_class=Check,
        params={
            "condition": "settings IS NULL OR jsonb_typeof(settings) = 'object'"
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="HierarchyNode",
        tablename="organization_hierarchy",
        constraint_name="hierarchy_settings_size",
        constraint_class=Check,
        params={
            "condition": "settings IS NULL OR octet_length(settings::text) <= 32768"
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="HierarchyNode",
        tablename="organization_hierarchy",
        constraint_name="hierarchy_version_positive",
        constraint_class=Check,
        params={"condition": "version >= 1"},
        schema=None,
    )

    return manager
