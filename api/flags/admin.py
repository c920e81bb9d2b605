"""The feature-flag admin API for super-admins (PRODUCT §4): every change audited.

Updates use optimistic concurrency: the client sends the `version` it read; a stale one is
refused with 409 and the current version (`require_current_version`, the admin UI's rule
too), so no change is silently overwritten; the database trigger bumps the version. Flags
are archived, never deleted, so their history stays.

Each write also clears this process's flag cache at once: the NOTIFY reaches it only after
commit, asynchronously, and without a LISTEN connection flag definitions are still kept for
a second, so the direct call is what lets a client read its own write on this replica.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from api.audit import audited_change
from api.auth.deps import SUPER_ADMIN
from api.auth.identity import Caller
from api.errors import Conflict, NotFound
from api.flags.store import flag_cache
from api.flags.validation import (
    require_current_version,
    validate_flag_changes,
    validate_override,
)
from api.schema import require_schema_and_strict_body
from tables.flags import FeatureFlag, FeatureFlagOverride
from tables.hierarchy import HierarchyNode
from tables.users import User

FLAG_COLUMNS = (
    FeatureFlag.id,
    FeatureFlag.key,
    FeatureFlag.name,
    FeatureFlag.description,
    FeatureFlag.enabled,
    FeatureFlag.rollout_percentage,
    FeatureFlag.archived,
    FeatureFlag.version,
    FeatureFlag.created_by_id,
    FeatureFlag.updated_by_id,
    FeatureFlag.created_at,
    FeatureFlag.updated_at,
)
OVERRIDE_COLUMNS = (
    FeatureFlagOverride.id,
    FeatureFlagOverride.flag_id,
    FeatureFlagOverride.user_id,
    FeatureFlagOverride.node_id,
    FeatureFlagOverride.variant,
    FeatureFlagOverride.reason,
    FeatureFlagOverride.expires_at,
    FeatureFlagOverride.created_by_id,
    FeatureFlagOverride.created_at,
)


class Flag(msgspec.Struct):
    id: int
    key: str
    name: str
    description: str
    enabled: bool
    rollout_percentage: Decimal
    archived: bool
    version: int
    created_by_id: int | None
    updated_by_id: int | None
    created_at: datetime
    updated_at: datetime


class FlagCreate(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    name: str
    description: str = ""
    enabled: bool = False
    rollout_percentage: Decimal = Decimal(0)


class FlagUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    version: int
    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    rollout_percentage: Decimal | msgspec.UnsetType = msgspec.UNSET


class Override(msgspec.Struct):
    id: int
    flag_id: int
    user_id: int | None
    node_id: int | None
    variant: str
    reason: str
    expires_at: datetime | None
    created_by_id: int | None
    created_at: datetime


class OverrideCreate(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool
    user_id: int | None = None
    node_id: int | None = None
    reason: str = ""
    expires_at: datetime | None = None


def _flag(row: dict[str, Any]) -> Flag:
    return msgspec.convert(row, Flag)


async def _load(key: str, *, lock: bool = False) -> Flag:
    query = FeatureFlag.select(*FLAG_COLUMNS).where(FeatureFlag.key == key)
    rows = await (query.lock_rows() if lock else query)
    if not rows:
        raise NotFound(f"No flag named {key!r}", extra={"key": key})
    return _flag(rows[0])


@get("/", operation_id="listFlags")
async def list_flags(
    caller: NamedDependency[Caller], include_archived: FromQuery[bool] = False
) -> list[Flag]:
    query = FeatureFlag.select(*FLAG_COLUMNS).order_by(FeatureFlag.key)
    if not include_archived:
        query = query.where(FeatureFlag.archived == False)  # noqa: E712
    return [_flag(row) for row in await query]


@post("/", operation_id="createFlag", status_code=201)
async def create_flag(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller], data: JSONBody[FlagCreate]
) -> Flag:
    fields = validate_flag_changes(msgspec.to_builtins(data))
    row = FeatureFlag(
        key=fields["key"],
        name=fields["name"],
        description=fields["description"],
        enabled=fields["enabled"],
        rollout_percentage=fields["rollout_percentage"],
        created_by_id=caller.user_id,
        updated_by_id=caller.user_id,
    )
    async with audited_change(
        "feature_flag.created", "feature_flag", actor=caller, connection=request
    ) as change:
        try:
            rows = await FeatureFlag.insert(row).returning(*FLAG_COLUMNS)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"A flag named {fields['key']!r} exists", extra={"field": "key"}
            ) from None
        flag = change.after = _flag(rows[0])
        change.resource_id = flag.key
    flag_cache.invalidate()
    return flag


@get("/{key:str}", operation_id="getFlag")
async def get_flag(caller: NamedDependency[Caller], key: FromPath[str]) -> Flag:
    return await _load(key)


async def _apply(
    request: Request[Any, Any, Any], caller: Caller, key: str, version: int, changes: dict[str, Any]
) -> Flag:
    action = "feature_flag.archived" if changes.get("archived") else "feature_flag.updated"
    values: dict[Any, Any] = {
        FeatureFlag._meta.get_column_by_name(k): v for k, v in changes.items()
    }
    values[FeatureFlag.updated_by_id] = caller.user_id  # version and updated_at: the trigger
    async with audited_change(
        action, "feature_flag", actor=caller, connection=request, resource_id=key
    ) as change:
        before = change.before = await _load(key, lock=True)
        require_current_version(before.version, version)
        rows = await (
            FeatureFlag.update(values).where(FeatureFlag.key == key).returning(*FLAG_COLUMNS)
        )
        after = change.after = _flag(rows[0])
    flag_cache.invalidate()
    return after


@patch("/{key:str}", operation_id="updateFlag")
async def update_flag(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[FlagUpdate],
) -> Flag:
    """Change name, description, kill switch or rollout; `version` must be the current one."""
    changes = {k: v for k, v in msgspec.to_builtins(data).items() if k != "version"}
    if "rollout_percentage" in changes:
        changes["rollout_percentage"] = data.rollout_percentage
    return await _apply(request, caller, key, data.version, validate_flag_changes(changes))


class ArchiveRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: int


@post("/{key:str}/archive", operation_id="archiveFlag", status_code=200)
async def archive_flag(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[ArchiveRequest],
) -> Flag:
    """Archive (never delete): the flag disappears from evaluation, its history stays."""
    return await _apply(request, caller, key, data.version, {"archived": True})


@get("/{key:str}/overrides", operation_id="listFlagOverrides")
async def list_overrides(caller: NamedDependency[Caller], key: FromPath[str]) -> list[Override]:
    flag = await _load(key)
    rows = (
        await FeatureFlagOverride.select(*OVERRIDE_COLUMNS)
        .where(FeatureFlagOverride.flag_id == flag.id)
        .order_by(FeatureFlagOverride.id)
    )
    return [msgspec.convert(row, Override) for row in rows]


@post("/{key:str}/overrides", operation_id="createFlagOverride", status_code=201)
async def create_override(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[OverrideCreate],
) -> Override:
    validate_override(
        user_id=data.user_id,
        node_id=data.node_id,
        enabled=data.enabled,
        reason=data.reason,
        expires_at=data.expires_at,
    )
    async with audited_change(
        "feature_flag_override.created", "feature_flag_override", actor=caller, connection=request
    ) as change:
        flag = await _load(key)
        target_exists = (
            User.exists().where(User.id == data.user_id)
            if data.user_id
            else HierarchyNode.exists().where(HierarchyNode.id == data.node_id)
        )
        if not await target_exists:
            field = "user_id" if data.user_id else "node_id"
            raise NotFound(f"No such {field.removesuffix('_id')}", extra={"field": field})
        row = FeatureFlagOverride(
            flag_id=flag.id,
            user_id=data.user_id,
            node_id=data.node_id,
            variant="on" if data.enabled else "off",
            reason=data.reason,
            expires_at=data.expires_at,
            created_by_id=caller.user_id,
        )
        try:
            rows = await FeatureFlagOverride.insert(row).returning(*OVERRIDE_COLUMNS)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "This target already has an override for the flag", extra={"field": "target"}
            ) from None
        override = msgspec.convert(rows[0], Override)
        change.resource_id = override.id
        change.after = {"flag": key, **msgspec.to_builtins(override)}
    flag_cache.invalidate()
    return override


@delete("/{key:str}/overrides/{override_id:int}", operation_id="deleteFlagOverride")
async def delete_override(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    override_id: FromPath[int],
) -> None:
    async with audited_change(
        "feature_flag_override.deleted",
        "feature_flag_override",
        actor=caller,
        connection=request,
        resource_id=override_id,
    ) as change:
        flag = await _load(key)
        rows = await (
            FeatureFlagOverride.delete()
            .where(
                (FeatureFlagOverride.id == override_id) & (FeatureFlagOverride.flag_id == flag.id)
            )
            .returning(*OVERRIDE_COLUMNS)
        )
        if not rows:
            raise NotFound("No such override for this flag", extra={"override_id": override_id})
        change.before = {"flag": key, **msgspec.to_builtins(msgspec.convert(rows[0], Override))}
    flag_cache.invalidate()


flags_admin_router = Router(
    before_request=require_schema_and_strict_body,
    path="/api/v1/admin/feature-flags",
    dependencies=SUPER_ADMIN,  # every handler names `caller`: that is the super-admin check
    tags=["admin"],
    route_handlers=[
        list_flags,
        create_flag,
        get_flag,
        update_flag,
        archive_flag,
        list_overrides,
        create_override,
        delete_override,
    ],
)
