"""The feature-flag admin API for super-admins (PRODUCT §4, docs/FLAGS.md): flags and their
overrides here, with the one router; targeting rules and segments in `admin_targeting`,
scheduled changes, usage and stale flags in `admin_schedules`. Every change is audited, in
the transaction that makes it.

Updates of a flag use optimistic concurrency: the client sends the `version` it read; a stale
one is refused with 409 and the current version (`require_current_version`, the admin UI's
rule too), so no change is silently overwritten; the database trigger bumps the version.
Flags are archived, never deleted, so their history stays.

A row below a flag (override, rule, scheduled change) is only ever found through its flag:
the path's key must be the row's flag, or the answer is 404, so no id reaches across flags.
Writes lock the flag's row first, so a change of its variants and a write naming one of
them never pass each other.

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

from api.auth.deps import SUPER_ADMIN
from api.auth.identity import Caller
from api.flags.admin_schedules import (
    cancel_schedule,
    create_schedule,
    get_usage,
    list_schedules,
    list_stale_flags,
)
from api.flags.admin_shared import FLAG_COLUMNS, Flag, as_flag, given_fields, load_flag
from api.flags.admin_targeting import (
    create_rule,
    create_segment,
    delete_rule,
    delete_segment,
    get_segment,
    list_rules,
    list_segments,
    update_rule,
    update_segment,
)
from api.flags.rules import (
    override_variant,
    require_current_version,
    require_variants_unused,
    validate_flag_changes,
    validate_override,
)
from api.flags.store import flag_cache
from api.platform.db.audit import audited_change
from api.platform.db.readiness import require_schema_and_strict_body
from api.platform.http.errors import Conflict, NotFound
from tables.flags import (
    FeatureFlag,
    FeatureFlagOverride,
)
from tables.hierarchy import HierarchyNode
from tables.users import User

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


class FlagCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A boolean flag may leave out its variants: it gets `on` (true) and `off` (false)."""

    key: str
    name: str
    description: str = ""
    enabled: bool = False
    rollout_percentage: Decimal = Decimal(0)
    flag_type: str | msgspec.UnsetType = msgspec.UNSET
    variants: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    default_variant: str | msgspec.UnsetType = msgspec.UNSET
    off_variant: str | msgspec.UnsetType = msgspec.UNSET
    rollout_split: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET


class FlagUpdate(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    rollout_percentage: Decimal | msgspec.UnsetType = msgspec.UNSET
    flag_type: str | msgspec.UnsetType = msgspec.UNSET
    variants: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    default_variant: str | msgspec.UnsetType = msgspec.UNSET
    off_variant: str | msgspec.UnsetType = msgspec.UNSET
    rollout_split: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET


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
    """`variant` names one of the flag's variants; for a boolean flag `enabled: true/false`
    may stand for `on`/`off`."""

    variant: str | None = None
    enabled: bool | None = None
    user_id: int | None = None
    node_id: int | None = None
    reason: str = ""
    expires_at: datetime | None = None


# ---- flags ---------------------------------------------------------------------------------


@get("/", operation_id="listFlags")
async def list_flags(
    caller: NamedDependency[Caller], include_archived: FromQuery[bool] = False
) -> list[Flag]:
    query = FeatureFlag.select(*FLAG_COLUMNS).order_by(FeatureFlag.key).output(load_json=True)
    if not include_archived:
        query = query.where(FeatureFlag.archived == False)  # noqa: E712
    return [as_flag(row) for row in await query]


@post("/", operation_id="createFlag", status_code=201)
async def create_flag(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller], data: JSONBody[FlagCreate]
) -> Flag:
    fields = validate_flag_changes(given_fields(data))
    row = FeatureFlag(**fields, created_by_id=caller.user_id, updated_by_id=caller.user_id)
    async with audited_change(
        "feature_flag.created", "feature_flag", actor=caller, connection=request
    ) as change:
        try:
            rows = await FeatureFlag.insert(row).returning(*FLAG_COLUMNS)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"A flag named {fields['key']!r} exists", extra={"field": "key"}
            ) from None
        flag = change.after = as_flag(rows[0])
        change.resource_id = flag.key
    flag_cache.invalidate()
    return flag


@get("/{key:str}", operation_id="getFlag")
async def get_flag(caller: NamedDependency[Caller], key: FromPath[str]) -> Flag:
    return await load_flag(key)


async def _apply(
    request: Request[Any, Any, Any], caller: Caller, key: str, version: int, changes: dict[str, Any]
) -> Flag:
    action = "feature_flag.archived" if changes.get("archived") else "feature_flag.updated"
    async with audited_change(
        action, "feature_flag", actor=caller, connection=request, resource_id=key
    ) as change:
        before = change.before = await load_flag(key, lock=True)
        require_current_version(before.version, version)
        cleaned = validate_flag_changes(changes, current=msgspec.to_builtins(before))
        if "variants" in cleaned:
            await require_variants_unused(before.id, before.variants, cleaned["variants"])
        values: dict[Any, Any] = {
            FeatureFlag._meta.get_column_by_name(k): v for k, v in cleaned.items()
        }
        values[FeatureFlag.updated_by_id] = caller.user_id  # version and updated_at: the trigger
        rows = await (
            FeatureFlag.update(values).where(FeatureFlag.key == key).returning(*FLAG_COLUMNS)
        )
        after = change.after = as_flag(rows[0])
    flag_cache.invalidate()
    return after


@patch("/{key:str}", operation_id="updateFlag")
async def update_flag(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[FlagUpdate],
) -> Flag:
    """Change name, description, kill switch, rollout or the variants; `version` must be the
    current one. A variant still named by an override, rule or pending change stays."""
    return await _apply(request, caller, key, data.version, given_fields(data, "version"))


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


# ---- overrides -----------------------------------------------------------------------------


@get("/{key:str}/overrides", operation_id="listFlagOverrides")
async def list_overrides(caller: NamedDependency[Caller], key: FromPath[str]) -> list[Override]:
    flag = await load_flag(key)
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
    async with audited_change(
        "feature_flag_override.created", "feature_flag_override", actor=caller, connection=request
    ) as change:
        flag = await load_flag(key, lock=True)
        variant = override_variant(flag.flag_type, data.variant, data.enabled)
        validate_override(
            user_id=data.user_id,
            node_id=data.node_id,
            variant=variant,
            variants=flag.variants,
            reason=data.reason,
            expires_at=data.expires_at,
        )
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
            variant=variant,
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
        flag = await load_flag(key)
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


flag_routes = Router(
    path="/feature-flags",
    route_handlers=[
        list_flags,
        create_flag,
        get_flag,
        update_flag,
        archive_flag,
        list_overrides,
        create_override,
        delete_override,
        list_rules,
        create_rule,
        update_rule,
        delete_rule,
        list_schedules,
        create_schedule,
        cancel_schedule,
        get_usage,
    ],
)
segment_routes = Router(
    path="/segments",
    route_handlers=[list_segments, get_segment, create_segment, update_segment, delete_segment],
)
flags_admin_router = Router(
    before_request=require_schema_and_strict_body,
    path="/api/v1/admin",
    dependencies=SUPER_ADMIN,  # every handler names `caller`: that is the super-admin check
    tags=["admin"],
    # Beside the flags, not under them: `/feature-flags/stale` would shadow a flag named so.
    route_handlers=[flag_routes, segment_routes, list_stale_flags],
)
