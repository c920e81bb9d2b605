from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-25T13:38:59:463409"
VERSION = "1.38.0"
DESCRIPTION = "Overrides keep only their variant"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="marketedge", description=DESCRIPTION
    )

    manager.drop_column(
        table_class_name="FeatureFlagOverride",
        tablename="feature_flag_overrides",
        column_name="enabled",
        db_column_name="enabled",
        schema=None,
    )

    return manager
