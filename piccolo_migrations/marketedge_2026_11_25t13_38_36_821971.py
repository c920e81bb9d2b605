from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from enum import Enum
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import BigInt
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Integer
from piccolo.columns.column_types import JSONB
from piccolo.columns.column_types import Numeric
from piccolo.columns.column_types import Serial
from piccolo.columns.column_types import Text
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.column_types import Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod
from piccolo.constraints import Check
from piccolo.constraints import Unique
from piccolo.table import Table


class FeatureFlag(Table, tablename="feature_flags", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


class Segment(Table, tablename="segments", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


class User(Table, tablename="users", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name=None,
        secret=False,
    )


ID = "2026-11-25T13:38:36:821971"
VERSION = "1.38.0"
DESCRIPTION = "Typed variants, rules, segments, scheduled changes and usage counts"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="marketedge", description=DESCRIPTION
    )

    manager.add_table(
        class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        schema=None,
        columns=None,
    )

    manager.add_table(
        class_name="Segment", tablename="segments", schema=None, columns=None
    )

    manager.add_table(
        class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        schema=None,
        columns=None,
    )

    manager.add_table(
        class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        schema=None,
        columns=None,
    )

    manager.add_column(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="id",
        db_column_name="id",
        column_class_name="Serial",
        column_class=Serial,
        params={
            "null": False,
            "primary_key": True,
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
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="flag_id",
        db_column_name="flag_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": FeatureFlag,
            "on_delete": OnDelete.restrict,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="action",
        db_column_name="action",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 30,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "ScheduleAction",
                {
                    "enable": "enable",
                    "disable": "disable",
                    "set_rollout": "set_rollout",
                    "set_default_variant": "set_default_variant",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="rollout_percentage",
        db_column_name="rollout_percentage",
        column_class_name="Numeric",
        column_class=Numeric,
        params={
            "default": None,
            "digits": (5, 2),
            "null": True,
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
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="variant",
        db_column_name="variant",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 100,
            "default": None,
            "null": True,
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
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="run_at",
        db_column_name="run_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="status",
        db_column_name="status",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 20,
            "default": "pending",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "ScheduleStatus",
                {
                    "pending": "pending",
                    "applied": "applied",
                    "cancelled": "cancelled",
                    "failed": "failed",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="note",
        db_column_name="note",
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

    manager.add_column(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="outcome",
        db_column_name="outcome",
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

    manager.add_column(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="applied_at",
        db_column_name="applied_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": None,
            "null": True,
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
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="created_by_id",
        db_column_name="created_by_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": User,
            "on_delete": OnDelete.set_null,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
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
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        column_name="updated_at",
        db_column_name="updated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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
        table_class_name="Segment",
        tablename="segments",
        column_name="id",
        db_column_name="id",
        column_class_name="Serial",
        column_class=Serial,
        params={
            "null": False,
            "primary_key": True,
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
        table_class_name="Segment",
        tablename="segments",
        column_name="key",
        db_column_name="key",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 100,
            "default": "",
            "null": False,
            "primary_key": False,
            "unique": True,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="Segment",
        tablename="segments",
        column_name="name",
        db_column_name="name",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 200,
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
        table_class_name="Segment",
        tablename="segments",
        column_name="description",
        db_column_name="description",
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

    manager.add_column(
        table_class_name="Segment",
        tablename="segments",
        column_name="conditions",
        db_column_name="conditions",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": "[]",
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
        table_class_name="Segment",
        tablename="segments",
        column_name="created_by_id",
        db_column_name="created_by_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": User,
            "on_delete": OnDelete.set_null,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
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
        table_class_name="Segment",
        tablename="segments",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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
        table_class_name="Segment",
        tablename="segments",
        column_name="updated_at",
        db_column_name="updated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="id",
        db_column_name="id",
        column_class_name="Serial",
        column_class=Serial,
        params={
            "null": False,
            "primary_key": True,
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
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="flag_id",
        db_column_name="flag_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": FeatureFlag,
            "on_delete": OnDelete.restrict,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="position",
        db_column_name="position",
        column_class_name="Integer",
        column_class=Integer,
        params={
            "default": 0,
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
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="name",
        db_column_name="name",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 100,
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
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="segment_id",
        db_column_name="segment_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Segment,
            "on_delete": OnDelete.restrict,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="conditions",
        db_column_name="conditions",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": "[]",
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
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="variant",
        db_column_name="variant",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 100,
            "default": None,
            "null": True,
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
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="split",
        db_column_name="split",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": None,
            "null": True,
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
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="created_by_id",
        db_column_name="created_by_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": User,
            "on_delete": OnDelete.set_null,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
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
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="created_at",
        db_column_name="created_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        column_name="updated_at",
        db_column_name="updated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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
        table_class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        column_name="count",
        db_column_name="count",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": 0,
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
        table_class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        column_name="id",
        db_column_name="id",
        column_class_name="Serial",
        column_class=Serial,
        params={
            "null": False,
            "primary_key": True,
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
        table_class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        column_name="flag_id",
        db_column_name="flag_id",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": FeatureFlag,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
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
        table_class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        column_name="hour",
        db_column_name="hour",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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
        table_class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        column_name="variant",
        db_column_name="variant",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 100,
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
        table_class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        column_name="last_evaluated_at",
        db_column_name="last_evaluated_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        constraint_name="flag_schedules_action_valid",
        constraint_class=Check,
        params={
            "condition": "action IN ('enable', 'disable', 'set_rollout', 'set_default_variant')"
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        constraint_name="flag_schedules_status_valid",
        constraint_class=Check,
        params={
            "condition": "status IN ('pending', 'applied', 'cancelled', 'failed')"
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        constraint_name="flag_schedules_argument",
        constraint_class=Check,
        params={
            "condition": "(action = 'set_rollout') = (rollout_percentage IS NOT NULL) AND (action = 'set_default_variant') = (variant IS NOT NULL)"
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlagSchedule",
        tablename="feature_flag_schedules",
        constraint_name="flag_schedules_rollout_range",
        constraint_class=Check,
        params={
            "condition": "rollout_percentage IS NULL OR (rollout_percentage >= 0 AND rollout_percentage <= 100)"
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="Segment",
        tablename="segments",
        constraint_name="segments_key_format",
        constraint_class=Check,
        params={"condition": "key ~ '^[a-z0-9]+([-_.][a-z0-9]+)*$'"},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="Segment",
        tablename="segments",
        constraint_name="segments_conditions_list",
        constraint_class=Check,
        params={"condition": "jsonb_typeof(conditions) = 'array'"},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        constraint_name="flag_rules_name_unique",
        constraint_class=Unique,
        params={"columns": ["flag_id", "name"], "nulls_distinct": True},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        constraint_name="flag_rules_variant_or_split",
        constraint_class=Check,
        params={"condition": "(variant IS NULL) <> (split IS NULL)"},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlagRule",
        tablename="feature_flag_rules",
        constraint_name="flag_rules_conditions_list",
        constraint_class=Check,
        params={"condition": "jsonb_typeof(conditions) = 'array'"},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        constraint_name="flag_usage_one_row",
        constraint_class=Unique,
        params={
            "columns": ["flag_id", "hour", "variant"],
            "nulls_distinct": True,
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        constraint_name="flag_usage_count_positive",
        constraint_class=Check,
        params={"condition": "count >= 0"},
        schema=None,
    )

    manager.add_column(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        column_name="default_variant",
        db_column_name="default_variant",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 100,
            "default": "on",
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
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        column_name="flag_type",
        db_column_name="flag_type",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 20,
            "default": "boolean",
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": Enum(
                "FlagType",
                {
                    "boolean": "boolean",
                    "string": "string",
                    "integer": "integer",
                    "float": "float",
                    "object": "object",
                },
            ),
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        column_name="off_variant",
        db_column_name="off_variant",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 100,
            "default": "off",
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
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        column_name="rollout_changed_at",
        db_column_name="rollout_changed_at",
        column_class_name="Timestamptz",
        column_class=Timestamptz,
        params={
            "default": TimestamptzNow(),
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
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        column_name="rollout_split",
        db_column_name="rollout_split",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": None,
            "null": True,
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
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        column_name="variants",
        db_column_name="variants",
        column_class_name="JSONB",
        column_class=JSONB,
        params={
            "default": '{"on": true, "off": false}',
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
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        column_name="variant",
        db_column_name="variant",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 100,
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

    manager.add_constraint(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        constraint_name="feature_flags_default_variant_known",
        constraint_class=Check,
        params={"condition": "variants ? default_variant"},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        constraint_name="feature_flags_off_variant_known",
        constraint_class=Check,
        params={"condition": "variants ? off_variant"},
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        constraint_name="feature_flags_type_valid",
        constraint_class=Check,
        params={
            "condition": "flag_type IN ('boolean', 'string', 'integer', 'float', 'object')"
        },
        schema=None,
    )

    manager.add_constraint(
        table_class_name="FeatureFlag",
        tablename="feature_flags",
        constraint_name="feature_flags_variants_object",
        constraint_class=Check,
        params={"condition": "jsonb_typeof(variants) = 'object'"},
        schema=None,
    )

    return manager
