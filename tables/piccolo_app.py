"""The Piccolo app holding every MarketEdge table; its migrations live in piccolo_migrations/."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from tables.admin import AdminSession, AdminUser
from tables.audit import AuditLog
from tables.flags import (
    FeatureFlag,
    FeatureFlagOverride,
    FeatureFlagRule,
    FeatureFlagSchedule,
    FeatureFlagUsage,
    Segment,
)
from tables.hierarchy import HierarchyNode, HierarchyPermissionOverride, UserHierarchyAssignment
from tables.sessions import OidcLoginState, UserSession
from tables.users import SuperAdminGrant, User

APP_NAME = "marketedge"

APP_CONFIG = AppConfig(
    app_name=APP_NAME,
    migrations_folder_path=str(Path(__file__).resolve().parent.parent / "piccolo_migrations"),
    table_classes=[
        User,
        SuperAdminGrant,
        HierarchyNode,
        UserHierarchyAssignment,
        HierarchyPermissionOverride,
        FeatureFlag,
        FeatureFlagOverride,
        Segment,
        FeatureFlagRule,
        FeatureFlagSchedule,
        FeatureFlagUsage,
        AuditLog,
        UserSession,
        OidcLoginState,
        AdminUser,
        AdminSession,
    ],
    migration_dependencies=[],
    commands=[],
)
