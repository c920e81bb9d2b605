"""Which tables the admin shows and how: on purpose, with the API's own validation.

Flags and flag overrides are validated by `api.flags.validation` (the admin API's one
implementation); the hierarchy's nesting and no-cycle rules hold in the database triggers
for every writer; users show a safe subset and cannot be created, deleted or promoted here
(super-admin comes from the audited command); the audit log is read-only; session tables are
not shown. PUT is refused for every table because it would skip these hooks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pydantic
from piccolo_admin.endpoints import FormConfig, TableConfig, create_admin
from piccolo_api.crud import endpoints as crud_endpoints
from piccolo_api.crud.endpoints import OrderBy, PiccoloCRUD
from piccolo_api.crud.validators import Validators
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.errors import AppError
from api.flags.validation import validate_flag_changes, validate_override
from api.settings import get_settings
from tables.admin import AdminSession, AdminUser
from tables.audit import AuditLog
from tables.flags import FeatureFlag, FeatureFlagOverride
from tables.hierarchy import HierarchyNode, HierarchyPermissionOverride, UserHierarchyAssignment
from tables.users import User


def _field_names_not_aliases(create: Callable[..., Any]) -> Callable[..., Any]:
    """piccolo_api builds its models with each column's `db_column_name` as alias (our
    foreign keys are `parent_id`, `user_id`, ...), while its rows, PATCH lookups and the admin
    UI use the field names: a foreign key could not be edited and list views failed to
    render. The admin's models here use field names only, as everything else does."""

    def create_by_field_name(*args: Any, **kwargs: Any) -> Any:
        model = create(*args, **kwargs)
        if not any(field.alias for field in model.model_fields.values()):
            return model
        fields: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            plain = copy.copy(field)
            plain.alias = plain.validation_alias = plain.serialization_alias = None
            plain.alias_priority = None
            fields[name] = (field.annotation, plain)
        return pydantic.create_model(model.__name__, __config__=model.model_config, **fields)

    return create_by_field_name


crud_endpoints.create_pydantic_model = _field_names_not_aliases(  # type: ignore[attr-defined]
    crud_endpoints.create_pydantic_model  # type: ignore[attr-defined]
)


def refuse(piccolo_crud: PiccoloCRUD, request: Request) -> None:
    raise HTTPException(status_code=405, detail="Not allowed in the admin")


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise HTTPException(status_code=400, detail="The body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="The body must be an object")
    return body


def _as_http(error: AppError) -> HTTPException:
    field = (error.extra or {}).get("field")
    return HTTPException(
        status_code=400, detail=f"{field}: {error.detail}" if field else error.detail
    )


def _form_value(value: Any) -> Any:
    """The admin's forms send booleans and numbers as text; read them as the API would."""
    if value in ("true", "false"):
        return value == "true"
    return value


async def validate_flag(piccolo_crud: PiccoloCRUD, request: Request) -> None:
    """The admin API's validation; a form saved over a newer version is refused (409)."""
    body = {key: _form_value(value) for key, value in (await _body(request)).items()}
    editable = {"key", "name", "description", "enabled", "rollout_percentage", "archived"}
    try:
        validate_flag_changes({k: v for k, v in body.items() if k in editable})
    except AppError as error:
        raise _as_http(error) from None
    row_id = request.path_params.get("row_id")
    if "version" in body and row_id is not None:
        from api.db import fetch

        rows = await fetch("SELECT version FROM feature_flags WHERE id = $1", int(row_id))
        if rows and str(rows[0]["version"]) != str(body["version"]):
            raise HTTPException(status_code=409, detail="The flag changed since you opened it")


async def validate_flag_override(piccolo_crud: PiccoloCRUD, request: Request) -> None:
    body = {key: _form_value(value) for key, value in (await _body(request)).items()}
    expires = body.get("expires_at")
    try:
        parsed = datetime.fromisoformat(expires) if isinstance(expires, str) and expires else None
        validate_override(
            user_id=body.get("user"),
            node_id=body.get("node"),
            enabled=body.get("enabled", False),
            reason=body.get("reason", ""),
            expires_at=parsed,
        )
    except AppError as error:
        raise _as_http(error) from None
    except ValueError:
        raise HTTPException(status_code=400, detail="expires_at: not a date-time") from None


async def validate_user_patch(piccolo_crud: PiccoloCRUD, request: Request) -> None:
    body = await _body(request)
    allowed = {"name", "given_name", "family_name", "is_active"}
    if set(body) - allowed:
        raise HTTPException(
            status_code=400, detail=f"only {', '.join(sorted(allowed))} can change here"
        )


def build_admin() -> Any:
    settings = get_settings()
    host = settings.public_url.split("://", 1)[1].split("/", 1)[0]
    tables = [
        TableConfig(
            FeatureFlag,
            visible_columns=[
                FeatureFlag.key,
                FeatureFlag.name,
                FeatureFlag.enabled,
                FeatureFlag.rollout_percentage,
                FeatureFlag.archived,
                FeatureFlag.version,
                FeatureFlag.updated_at,
            ],
            visible_filters=[FeatureFlag.key, FeatureFlag.enabled, FeatureFlag.archived],
            validators=Validators(
                post_single=[validate_flag],
                patch_single=[validate_flag],
                delete_single=[refuse],
                put_single=[refuse],
            ),
            menu_group="Feature flags",
            link_column=FeatureFlag.key,
            order_by=[OrderBy(FeatureFlag.updated_at, ascending=False)],
        ),
        TableConfig(
            FeatureFlagOverride,
            validators=Validators(
                post_single=[validate_flag_override],
                patch_single=[validate_flag_override],
                put_single=[refuse],
            ),
            menu_group="Feature flags",
        ),
        TableConfig(
            HierarchyNode,
            exclude_visible_columns=[HierarchyNode.settings],
            validators=Validators(put_single=[refuse]),
            menu_group="Organisation",
            link_column=HierarchyNode.name,
        ),
        TableConfig(
            UserHierarchyAssignment,
            validators=Validators(put_single=[refuse]),
            menu_group="Organisation",
        ),
        TableConfig(
            HierarchyPermissionOverride,
            validators=Validators(put_single=[refuse]),
            menu_group="Organisation",
        ),
        TableConfig(
            User,
            visible_columns=[
                User.email,
                User.name,
                User.given_name,
                User.family_name,
                User.is_active,
                User.is_super_admin,
                User.last_login_at,
            ],
            validators=Validators(
                post_single=[refuse],
                delete_single=[refuse],
                patch_single=[validate_user_patch],
                put_single=[refuse],
            ),
            menu_group="People",
            link_column=User.email,
        ),
        TableConfig(
            AuditLog,
            order_by=[OrderBy(AuditLog.id, ascending=False)],
            visible_filters=[
                AuditLog.action,
                AuditLog.resource_type,
                AuditLog.resource_id,
                AuditLog.actor,
            ],
            validators=Validators(
                post_single=[refuse],
                patch_single=[refuse],
                delete_single=[refuse],
                delete_all=[refuse],
                put_single=[refuse],
            ),
            menu_group="Audit",
        ),
    ]
    return create_admin(
        tables=tables,
        forms=[WHAT_USER_SEES],
        auth_table=AdminUser,
        session_table=AdminSession,
        auto_include_related=False,
        allowed_hosts=[host],
        production=settings.public_url_is_https,
        site_name="MarketEdge admin",
        read_only=False,
    )


class WhatUserSees(pydantic.BaseModel):
    email: str


async def what_user_sees(_: Request, data: WhatUserSees) -> str:
    """Every flag's value and reason for one user, exactly as the API evaluates it."""
    from api.db import fetch
    from api.flags.store import evaluate_all

    rows = await fetch("SELECT id FROM users WHERE email = $1", data.email.strip().lower())
    if not rows:
        return f"No user with the e-mail {data.email!r}."
    results = await evaluate_all(int(rows[0]["id"]))
    lines = [f"{e.key}: {'ON' if e.value else 'off'} ({e.reason.value})" for e in results]
    return f"{data.email} sees {len(lines)} flags — " + "; ".join(lines)


WHAT_USER_SEES = FormConfig(
    name="What a user sees",
    pydantic_model=WhatUserSees,
    endpoint=what_user_sees,
    description="Every feature flag's value and reason for one user, as the API answers them.",
)
