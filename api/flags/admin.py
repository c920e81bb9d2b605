"""The feature-flag admin API for super-admins (PRODUCT §4): every change audited.

Updates use optimistic concurrency: the client sends the `version` it read; a stale one is
refused with 409 and the current version, so no change is silently overwritten. Flags are
archived, never deleted, so their history stays.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Router, delete, get, patch, post

from api.audit import record_audit
from api.auth.guards import provide_caller, require_super_admin
from api.auth.identity import Caller
from api.db import engine, fetch, set_clause
from api.errors import Conflict, NotFound
from api.flags.store import flag_cache
from api.flags.validation import validate_flag_changes, validate_override
from api.request_body import require_strict_body

FLAG_COLUMNS = (
    "id, key, name, description, enabled, rollout_percentage, archived, version,"
    " created_by_id, updated_by_id, created_at, updated_at"
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
    enabled: bool
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


def _flag(row: Any) -> Flag:
    return Flag(**dict(row))


def _snapshot(flag: Flag) -> dict[str, Any]:
    return msgspec.to_builtins(flag)  # type: ignore[no-any-return]


async def _load(key: str, *, lock: bool = False) -> Flag:
    suffix = " FOR UPDATE" if lock else ""
    rows = await fetch(f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE key = $1{suffix}", key)
    if not rows:
        raise NotFound(f"No flag named {key!r}", extra={"key": key})
    return _flag(rows[0])


@get("/", operation_id="listFlags")
async def list_flags(include_archived: bool = False) -> list[Flag]:
    rows = await fetch(
        f"SELECT {FLAG_COLUMNS} FROM feature_flags WHERE $1 OR NOT archived ORDER BY key",
        include_archived,
    )
    return [_flag(row) for row in rows]


@post("/", operation_id="createFlag", status_code=201)
async def create_flag(request: Request[Any, Any, Any], caller: Caller, data: FlagCreate) -> Flag:
    fields = validate_flag_changes(msgspec.to_builtins(data))
    async with engine().transaction():
        try:
            rows = await fetch(
                "INSERT INTO feature_flags (key, name, description, enabled, rollout_percentage,"
                " created_by_id, updated_by_id) VALUES ($1, $2, $3, $4, $5, $6, $6)"
                f" RETURNING {FLAG_COLUMNS}",
                fields["key"],
                fields["name"],
                fields["description"],
                fields["enabled"],
                fields["rollout_percentage"],
                caller.user_id,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"A flag named {fields['key']!r} exists", extra={"field": "key"}
            ) from None
        flag = _flag(rows[0])
        await record_audit(
            action="feature_flag.created",
            resource_type="feature_flag",
            resource_id=flag.key,
            actor=caller,
            after=_snapshot(flag),
            connection=request,
        )
    flag_cache.invalidate()
    return flag


@get("/{key:str}", operation_id="getFlag")
async def get_flag(key: str) -> Flag:
    return await _load(key)


async def _apply(
    request: Request[Any, Any, Any], caller: Caller, key: str, version: int, changes: dict[str, Any]
) -> Flag:
    async with engine().transaction():
        before = await _load(key, lock=True)
        if before.version != version:
            raise Conflict(
                "The flag changed since you read it; reload and retry",
                extra={"reason": "stale_version", "current_version": before.version},
            )
        prefix = f"{set_clause(changes, first=3)}, " if changes else ""
        rows = await fetch(
            f"UPDATE feature_flags SET {prefix}version = version + 1, updated_by_id = $2,"
            f" updated_at = now() WHERE key = $1 RETURNING {FLAG_COLUMNS}",
            key,
            caller.user_id,
            *changes.values(),
        )
        after = _flag(rows[0])
        await record_audit(
            action="feature_flag.archived" if changes.get("archived") else "feature_flag.updated",
            resource_type="feature_flag",
            resource_id=key,
            actor=caller,
            before=_snapshot(before),
            after=_snapshot(after),
            connection=request,
        )
    flag_cache.invalidate()
    return after


@patch("/{key:str}", operation_id="updateFlag")
async def update_flag(
    request: Request[Any, Any, Any], caller: Caller, key: str, data: FlagUpdate
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
    request: Request[Any, Any, Any], caller: Caller, key: str, data: ArchiveRequest
) -> Flag:
    """Archive (never delete): the flag disappears from evaluation, its history stays."""
    return await _apply(request, caller, key, data.version, {"archived": True})


OVERRIDE_COLUMNS = (
    "id, flag_id, user_id, node_id, enabled, reason, expires_at, created_by_id, created_at"
)


@get("/{key:str}/overrides", operation_id="listFlagOverrides")
async def list_overrides(key: str) -> list[Override]:
    flag = await _load(key)
    rows = await fetch(
        f"SELECT {OVERRIDE_COLUMNS} FROM feature_flag_overrides WHERE flag_id = $1 ORDER BY id",
        flag.id,
    )
    return [Override(**dict(row)) for row in rows]


@post("/{key:str}/overrides", operation_id="createFlagOverride", status_code=201)
async def create_override(
    request: Request[Any, Any, Any], caller: Caller, key: str, data: OverrideCreate
) -> Override:
    validate_override(
        user_id=data.user_id,
        node_id=data.node_id,
        enabled=data.enabled,
        reason=data.reason,
        expires_at=data.expires_at,
    )
    async with engine().transaction():
        flag = await _load(key)
        table, target = (
            ("users", data.user_id) if data.user_id else ("organization_hierarchy", data.node_id)
        )
        if not await fetch(f"SELECT 1 FROM {table} WHERE id = $1", target):
            field = "user_id" if data.user_id else "node_id"
            raise NotFound(f"No such {field.removesuffix('_id')}", extra={"field": field})
        try:
            rows = await fetch(
                "INSERT INTO feature_flag_overrides (flag_id, user_id, node_id, enabled, reason,"
                " expires_at, created_by_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                f" RETURNING {OVERRIDE_COLUMNS}",
                flag.id,
                data.user_id,
                data.node_id,
                data.enabled,
                data.reason,
                data.expires_at,
                caller.user_id,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "This target already has an override for the flag", extra={"field": "target"}
            ) from None
        override = Override(**dict(rows[0]))
        await record_audit(
            action="feature_flag_override.created",
            resource_type="feature_flag_override",
            resource_id=override.id,
            actor=caller,
            after={"flag": key, **msgspec.to_builtins(override)},
            connection=request,
        )
    flag_cache.invalidate()
    return override


@delete("/{key:str}/overrides/{override_id:int}", operation_id="deleteFlagOverride")
async def delete_override(
    request: Request[Any, Any, Any], caller: Caller, key: str, override_id: int
) -> None:
    async with engine().transaction():
        flag = await _load(key)
        rows = await fetch(
            "DELETE FROM feature_flag_overrides WHERE id = $1 AND flag_id = $2"
            f" RETURNING {OVERRIDE_COLUMNS}",
            override_id,
            flag.id,
        )
        if not rows:
            raise NotFound("No such override for this flag", extra={"override_id": override_id})
        await record_audit(
            action="feature_flag_override.deleted",
            resource_type="feature_flag_override",
            resource_id=override_id,
            actor=caller,
            before={"flag": key, **msgspec.to_builtins(Override(**dict(rows[0])))},
            connection=request,
        )
    flag_cache.invalidate()


flags_admin_router = Router(
    before_request=require_strict_body,
    path="/api/v1/admin/feature-flags",
    guards=[require_super_admin],
    dependencies={"caller": provide_caller},
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
