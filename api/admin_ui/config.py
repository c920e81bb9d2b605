"""Which tables the admin shows and how: on purpose, with the API's own validation.

Every table the admin writes has `WriteRules` (api/admin_ui/write_hooks.py): the fields a form may
change, the API's validation of them, and the actor columns set from the signed-in
super-admin. The hierarchy's nesting and no-cycle rules hold in database triggers for every
writer; users show a safe subset and cannot be created, deleted or promoted here
(super-admin comes from the audited command); the audit log is read-only; session tables are
not shown. PUT is refused for every table because it would skip the hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from piccolo_admin.endpoints import TableConfig, create_admin
from piccolo_api.crud.endpoints import OrderBy
from starlette.staticfiles import StaticFiles

from api.admin_ui.answers import AdminAnswers
from api.admin_ui.write_hooks import (
    table_config as _table,
)
from api.flags.admin_ui import IMPORT_FLAGS, STALE_FLAGS, WHAT_USER_SEES, flag_table_configs
from api.hierarchy.admin_ui import (
    ASSIGNMENT_RULES,
    NODE_RULES,
    PERMISSION_OVERRIDE_RULES,
    USER_RULES,
)
from api.platform.config import get_settings
from tables.admin import AdminSession, AdminUser
from tables.audit import AuditLog
from tables.hierarchy import HierarchyNode, HierarchyPermissionOverride, UserHierarchyAssignment
from tables.users import User

STATIC = Path(__file__).resolve().parent / "static"


def table_configs() -> list[TableConfig]:
    return [
        *flag_table_configs(),
        _table(
            HierarchyNode,
            NODE_RULES,
            visible_columns=[
                HierarchyNode.full_name,
                HierarchyNode.level,
                HierarchyNode.slug,
                HierarchyNode.parent_id,
                HierarchyNode.is_active,
                HierarchyNode.email_domains,
                HierarchyNode.managed_settings,
            ],
            visible_filters=[HierarchyNode.name, HierarchyNode.level, HierarchyNode.parent_id],
            menu_group="Organisation",
            link_column=HierarchyNode.full_name,
            order_by=[OrderBy(HierarchyNode.full_name)],
        ),
        _table(
            UserHierarchyAssignment,
            ASSIGNMENT_RULES,
            visible_columns=[
                UserHierarchyAssignment.id,
                UserHierarchyAssignment.user_id,
                UserHierarchyAssignment.node_id,
                UserHierarchyAssignment.role,
                UserHierarchyAssignment.is_primary,
                UserHierarchyAssignment.is_active,
                UserHierarchyAssignment.granted_by_id,
            ],
            visible_filters=[
                UserHierarchyAssignment.user_id,
                UserHierarchyAssignment.node_id,
                UserHierarchyAssignment.role,
            ],
            menu_group="Organisation",
            order_by=[OrderBy(UserHierarchyAssignment.id, ascending=False)],
        ),
        _table(
            HierarchyPermissionOverride,
            PERMISSION_OVERRIDE_RULES,
            visible_columns=[
                HierarchyPermissionOverride.id,
                HierarchyPermissionOverride.user_id,
                HierarchyPermissionOverride.node_id,
                HierarchyPermissionOverride.permission,
                HierarchyPermissionOverride.granted,
                HierarchyPermissionOverride.reason,
                HierarchyPermissionOverride.expires_at,
                HierarchyPermissionOverride.granted_by_id,
            ],
            visible_filters=[
                HierarchyPermissionOverride.user_id,
                HierarchyPermissionOverride.node_id,
                HierarchyPermissionOverride.permission,
            ],
            menu_group="Organisation",
            order_by=[OrderBy(HierarchyPermissionOverride.id, ascending=False)],
        ),
        _table(
            User,
            USER_RULES,
            delete=False,
            visible_columns=[
                User.email,
                User.name,
                User.given_name,
                User.family_name,
                User.is_active,
                User.is_super_admin,
                User.last_login_at,
            ],
            visible_filters=[User.email, User.name, User.is_active, User.is_super_admin],
            menu_group="People",
            link_column=User.email,
        ),
        _table(
            AuditLog,
            None,
            visible_columns=[
                AuditLog.occurred_at,
                AuditLog.actor_id,
                AuditLog.action,
                AuditLog.resource_id,
                AuditLog.changes,
            ],
            link_column=AuditLog.action,
            order_by=[OrderBy(AuditLog.id, ascending=False)],
            visible_filters=[
                AuditLog.action,
                AuditLog.resource_type,
                AuditLog.resource_id,
                AuditLog.actor_id,
            ],
            menu_group="Audit",
        ),
    ]


def build_admin() -> Any:
    settings = get_settings()
    host = settings.public_url.split("://", 1)[1].split("/", 1)[0]
    admin = create_admin(
        tables=table_configs(),
        forms=[WHAT_USER_SEES, STALE_FLAGS, IMPORT_FLAGS],
        auth_table=AdminUser,
        session_table=AdminSession,
        auto_include_related=False,
        allowed_hosts=[host],
        production=settings.public_url_is_https,
        site_name="MarketEdge admin",
        read_only=False,
    )
    # Our additions to the admin's page: the audit log's pages without write controls
    # (Piccolo Admin has no per-table read-only switch: piccolo-orm/piccolo_admin#138),
    # a flag's overrides link and readable form results.
    admin.mount("/marketedge", StaticFiles(directory=STATIC))
    admin.template = admin.template.replace(
        "</head>",
        '<link rel="stylesheet" href="./marketedge/admin.css">'
        '<script defer src="./marketedge/admin.js"></script></head>',
    )
    return AdminAnswers(admin)
