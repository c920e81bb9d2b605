"""The flag management API for super-admins (PRODUCT §4, docs/FLAGS.md): flags and their
overrides here, with the one router; targeting rules and segments in `targeting`, scheduled
changes, usage and stale flags in `schedules`. Every write is a call to `api.flags.service`,
the write path Piccolo Admin uses too.

Updates of a flag use optimistic concurrency: the client sends the `version` it read; a stale
one is refused with 409 and the current version. Flags are archived, never deleted, so their
history stays. A row below a flag (override, rule, scheduled change) is only ever found
through its flag: the path's key must be the row's flag, or the answer is 404.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth.deps import SUPER_ADMIN
from api.auth.identity import Caller
from api.flags import queries, service
from api.flags.routes.schedules import (
    cancel_schedule,
    create_schedule,
    get_usage,
    list_schedules,
    list_stale_flags,
)
from api.flags.routes.targeting import (
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
from api.flags.schemas import (
    ArchiveRequest,
    Flag,
    FlagCreate,
    FlagUpdate,
    Override,
    OverrideCreate,
    given_fields,
)
from api.platform.db.readiness import require_schema_and_strict_body

# ---- flags ---------------------------------------------------------------------------------


@get("/", operation_id="listFlags")
async def list_flags(
    caller: NamedDependency[Caller], include_archived: FromQuery[bool] = False
) -> list[Flag]:
    return await queries.list_flags(include_archived=include_archived)


@post("/", operation_id="createFlag", status_code=201)
async def create_flag(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller], data: JSONBody[FlagCreate]
) -> Flag:
    return await service.create_flag(given_fields(data), caller, request)


@get("/{key:str}", operation_id="getFlag")
async def get_flag(caller: NamedDependency[Caller], key: FromPath[str]) -> Flag:
    return await queries.load_flag(key)


@patch("/{key:str}", operation_id="updateFlag")
async def update_flag(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[FlagUpdate],
) -> Flag:
    """Change name, description, kill switch, rollout or the variants; `version` must be the
    current one. A variant still named by an override, rule or pending change stays. A change
    that changes nothing keeps the version."""
    changes = given_fields(data, "version")
    return await service.update_flag(key, data.version, changes, caller, request)


@post("/{key:str}/archive", operation_id="archiveFlag", status_code=200)
async def archive_flag(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[ArchiveRequest],
) -> Flag:
    """Archive (never delete): the flag disappears from evaluation, its history stays."""
    return await service.update_flag(key, data.version, {"archived": True}, caller, request)


# ---- overrides -----------------------------------------------------------------------------


@get("/{key:str}/overrides", operation_id="listFlagOverrides")
async def list_overrides(caller: NamedDependency[Caller], key: FromPath[str]) -> list[Override]:
    return await queries.list_overrides((await queries.load_flag(key)).id)


@post("/{key:str}/overrides", operation_id="createFlagOverride", status_code=201)
async def create_override(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[OverrideCreate],
) -> Override:
    return await service.create_override(key, given_fields(data), caller, request)


@delete("/{key:str}/overrides/{override_id:int}", operation_id="deleteFlagOverride")
async def delete_override(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    override_id: FromPath[int],
) -> None:
    await service.delete_override(key, override_id, caller, request)


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
flags_management_router = Router(
    before_request=require_schema_and_strict_body,
    path="/api/v1/admin",
    dependencies=SUPER_ADMIN,  # every handler names `caller`: that is the super-admin check
    tags=["admin"],
    # Beside the flags, not under them: `/feature-flags/stale` would shadow a flag named so.
    route_handlers=[flag_routes, segment_routes, list_stale_flags],
)
