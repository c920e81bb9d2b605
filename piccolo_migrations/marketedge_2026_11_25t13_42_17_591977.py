from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-25T13:42:17:591977"
VERSION = "1.38.0"
DESCRIPTION = "Usage counts are called evaluations: `count` shadows Table.count()"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="marketedge", description=DESCRIPTION
    )

    manager.rename_column(
        table_class_name="FeatureFlagUsage",
        tablename="feature_flag_usage",
        old_column_name="count",
        new_column_name="evaluations",
        old_db_column_name="count",
        new_db_column_name="evaluations",
        schema=None,
    )

    return manager
