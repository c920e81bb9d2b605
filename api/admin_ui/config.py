"""Which tables the admin shows and how: on purpose, with the API's own validation.

Every table the admin writes has `WriteRules` (api/admin_ui/write_hooks.py): the fields a form may
change, the API's validation of them, and the actor columns set from the signed-in
super-admin. The hierarchy's nesting and no-cycle rules hold in database triggers for every
writer; users show a safe subset and cannot be created, deleted or promoted here
(super-admin comes from the audited command); the audit log is read-only; session tables are
not shown. PUT is refused for every table because it would skip the hooks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic
from piccolo.table import Table
from piccolo_admin.endpoints import FormConfig, TableConfig, create_admin
from piccolo_api.crud.endpoints import OrderBy, PiccoloCRUD
from piccolo_api.crud.validators import Validators
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.staticfiles import StaticFiles

from api.admin_ui.answers import AdminAnswers
from api.admin_ui.write_hooks import (
    WriteRules,
    check_flag,
    check_flag_override,
    check_rule,
    check_schedule,
    check_segment,
)
from api.flags.stale import stale_flags
from api.hierarchy.admin_ui import (
    ASSIGNMENT_RULES,
    NODE_RULES,
    PERMISSION_OVERRIDE_RULES,
    USER_RULES,
)
from api.platform.config import get_settings
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
from tables.users import User

STATIC = Path(__file__).resolve().parent / "static"


def refuse(piccolo_crud: PiccoloCRUD, request: Request) -> None:
    raise HTTPException(status_code=405, detail="Not allowed in the admin")


def known_order(piccolo_crud: PiccoloCRUD, request: Request) -> None:
    """`__order` may name the table's columns only (piccolo_api answers 500 otherwise)."""
    names = {column._meta.name for column in piccolo_crud.table._meta.columns}
    for part in request.query_params.get("__order", "").split(","):
        name = part.strip().lstrip("+-")
        if name and name not in names:
            raise HTTPException(status_code=400, detail=f"Cannot order by {name!r}")


def _validators(rules: WriteRules | None, *, delete: bool = True) -> Validators:
    writes = [] if rules is not None else [refuse]
    return Validators(
        get_all=[known_order],
        post_single=list(writes),
        patch_single=list(writes),
        delete_single=[] if delete and rules is not None else [refuse],
        delete_all=[refuse],
        put_single=[refuse],
    )


def _table(
    table: type[Table],
    rules: WriteRules | None,
    *,
    delete: bool = True,
    **options: Any,
) -> TableConfig:
    return TableConfig(
        table,
        validators=_validators(rules, delete=delete),
        hooks=rules.hooks() if rules is not None else None,
        **options,
    )


FLAG_RULES = WriteRules(
    FeatureFlag,
    editable=frozenset(
        {
            "key",
            "name",
            "description",
            "enabled",
            "rollout_percentage",
            "archived",
            "flag_type",
            "variants",
            "default_variant",
            "off_variant",
            "rollout_split",
        }
    ),
    check=check_flag,
    actor_on_insert=("created_by_id", "updated_by_id"),
    actor_on_update=("updated_by_id",),
    optimistic_version=True,
)
FLAG_OVERRIDE_RULES = WriteRules(
    FeatureFlagOverride,
    editable=frozenset({"flag_id", "user_id", "node_id", "variant", "reason", "expires_at"}),
    check=check_flag_override,
    actor_on_insert=("created_by_id",),
)
RULE_RULES = WriteRules(
    FeatureFlagRule,
    editable=frozenset(
        {"flag_id", "position", "name", "segment_id", "conditions", "variant", "split"}
    ),
    updatable=frozenset({"position", "name", "segment_id", "conditions", "variant", "split"}),
    check=check_rule,
    actor_on_insert=("created_by_id",),
)
SEGMENT_RULES = WriteRules(
    Segment,
    editable=frozenset({"key", "name", "description", "conditions"}),
    check=check_segment,
    actor_on_insert=("created_by_id",),
)
SCHEDULE_RULES = WriteRules(
    FeatureFlagSchedule,
    editable=frozenset({"flag_id", "action", "rollout_percentage", "variant", "run_at", "note"}),
    updatable=frozenset({"status"}),  # pending → cancelled, and nothing else
    check=check_schedule,
    actor_on_insert=("created_by_id",),
)


def table_configs() -> list[TableConfig]:
    return [
        _table(
            FeatureFlag,
            FLAG_RULES,
            delete=False,
            visible_columns=[
                FeatureFlag.key,
                FeatureFlag.name,
                FeatureFlag.enabled,
                FeatureFlag.flag_type,
                FeatureFlag.default_variant,
                FeatureFlag.rollout_percentage,
                FeatureFlag.archived,
                FeatureFlag.version,
                FeatureFlag.updated_by_id,
                FeatureFlag.updated_at,
            ],
            visible_filters=[FeatureFlag.key, FeatureFlag.enabled, FeatureFlag.archived],
            menu_group="Feature flags",
            link_column=FeatureFlag.key,
            order_by=[OrderBy(FeatureFlag.updated_at, ascending=False)],
        ),
        _table(
            FeatureFlagOverride,
            FLAG_OVERRIDE_RULES,
            visible_columns=[
                FeatureFlagOverride.id,
                FeatureFlagOverride.flag_id,
                FeatureFlagOverride.user_id,
                FeatureFlagOverride.node_id,
                FeatureFlagOverride.variant,
                FeatureFlagOverride.reason,
                FeatureFlagOverride.expires_at,
                FeatureFlagOverride.created_by_id,
            ],
            visible_filters=[
                FeatureFlagOverride.flag_id,
                FeatureFlagOverride.user_id,
                FeatureFlagOverride.node_id,
            ],
            menu_group="Feature flags",
            order_by=[OrderBy(FeatureFlagOverride.id, ascending=False)],
        ),
        _table(
            FeatureFlagRule,
            RULE_RULES,
            # No `id`: the list draws the pk only as its link column, else it renders blank.
            visible_columns=[
                FeatureFlagRule.name,
                FeatureFlagRule.flag_id,
                FeatureFlagRule.position,
                FeatureFlagRule.segment_id,
                FeatureFlagRule.conditions,
                FeatureFlagRule.variant,
                FeatureFlagRule.split,
            ],
            visible_filters=[
                FeatureFlagRule.flag_id,
                FeatureFlagRule.name,
                FeatureFlagRule.segment_id,
            ],
            menu_group="Feature flags",
            link_column=FeatureFlagRule.name,
            order_by=[OrderBy(FeatureFlagRule.flag_id), OrderBy(FeatureFlagRule.position)],
        ),
        _table(
            Segment,
            SEGMENT_RULES,
            visible_columns=[
                Segment.key,
                Segment.name,
                Segment.conditions,
                Segment.created_by_id,
                Segment.updated_at,
            ],
            visible_filters=[Segment.key, Segment.name],
            menu_group="Feature flags",
            link_column=Segment.key,
            order_by=[OrderBy(Segment.key)],
        ),
        _table(
            FeatureFlagSchedule,
            SCHEDULE_RULES,
            delete=False,
            visible_columns=[
                FeatureFlagSchedule.id,
                FeatureFlagSchedule.flag_id,
                FeatureFlagSchedule.action,
                FeatureFlagSchedule.rollout_percentage,
                FeatureFlagSchedule.variant,
                FeatureFlagSchedule.run_at,
                FeatureFlagSchedule.status,
                FeatureFlagSchedule.note,
                FeatureFlagSchedule.outcome,
                FeatureFlagSchedule.created_by_id,
            ],
            visible_filters=[
                FeatureFlagSchedule.flag_id,
                FeatureFlagSchedule.status,
                FeatureFlagSchedule.action,
            ],
            menu_group="Feature flags",
            order_by=[OrderBy(FeatureFlagSchedule.run_at, ascending=False)],
        ),
        _table(
            FeatureFlagUsage,
            None,
            visible_columns=[
                FeatureFlagUsage.flag_id,
                FeatureFlagUsage.hour,
                FeatureFlagUsage.variant,
                FeatureFlagUsage.evaluations,
                FeatureFlagUsage.last_evaluated_at,
            ],
            visible_filters=[FeatureFlagUsage.flag_id, FeatureFlagUsage.variant],
            menu_group="Feature flags",
            order_by=[OrderBy(FeatureFlagUsage.hour, ascending=False)],
        ),
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
        forms=[WHAT_USER_SEES, STALE_FLAGS],
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


class WhatUserSees(pydantic.BaseModel):
    email: str = pydantic.Field(
        min_length=3, max_length=320, description="The person's e-mail address"
    )


async def what_user_sees(_: Request, data: WhatUserSees) -> str:
    """Every flag's value and reason for one user, exactly as the API evaluates it.

    The admin shows a form's answer as text; admin.css keeps its columns aligned."""
    from api.flags.store import evaluate_all

    email = data.email.strip().lower()
    user = await User.select(User.id).where(User.email == email).first()
    if user is None:
        raise ValueError(f"No user has the e-mail {email}.")
    results = await evaluate_all(int(user["id"]))
    if not results:
        return f"{email} sees no feature flags."
    rows = [
        (result.key, result.variant or "-", json.dumps(result.value), result.reason.value)
        for result in results
    ]
    return f"{email} sees {len(results)} flags:\n" + text_table(
        ("flag", "variant", "value", "reason"), rows
    )


def text_table(headings: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Columns aligned with spaces, a rule under the headings (admin.css shows it as is)."""
    widths = [max(len(cell) for cell in column) for column in zip(headings, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    rule = tuple("-" * width for width in widths)
    return "\n".join(line(cells).rstrip() for cells in (headings, rule, *rows))


WHAT_USER_SEES = FormConfig(
    name="What a user sees",
    pydantic_model=WhatUserSees,
    endpoint=what_user_sees,
    description="Every feature flag's value and reason for one user, as the API answers them.",
)


class StaleFlags(pydantic.BaseModel):
    days: int = pydantic.Field(
        default=30, ge=1, le=3650, description="Not evaluated, or rollout unchanged, this long"
    )


async def list_stale_flags(_: Request, data: StaleFlags) -> str:
    """The stale-flag candidates, as the admin API lists them."""
    stale = await stale_flags(data.days)
    if not stale:
        return f"No stale flags after {data.days} days."
    rows = [
        (
            flag.key,
            ", ".join(flag.reasons),
            flag.last_evaluated_at.strftime("%Y-%m-%d %H:%M")
            if flag.last_evaluated_at
            else "never",
            f"{flag.rollout_percentage} %",
            flag.rollout_changed_at.strftime("%Y-%m-%d"),
        )
        for flag in stale
    ]
    headings = ("flag", "why", "last evaluated", "rollout", "rollout since")
    return f"{len(stale)} stale flags after {data.days} days:\n" + text_table(headings, rows)


STALE_FLAGS = FormConfig(
    name="Stale flags",
    pydantic_model=StaleFlags,
    endpoint=list_stale_flags,
    description=(
        "Flags not evaluated for N days (never evaluated counts from creation), and flags"
        " whose rollout has stayed at 0 % or 100 % for N days."
    ),
)
