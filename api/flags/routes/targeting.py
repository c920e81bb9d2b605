"""Targeting rules of a flag and the segments rules share (docs/FLAGS.md), for
super-admins: a rule reached only through its flag; writes through `api.flags.service`."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from api.auth.identity import Caller
from api.flags import queries, service
from api.flags.schemas import (
    RuleCreate,
    RuleUpdate,
    SegmentCreate,
    SegmentOut,
    SegmentUpdate,
    TargetingRule,
    given_fields,
)

# ---- targeting rules -----------------------------------------------------------------------


@get("/{key:str}/rules", operation_id="listFlagRules")
async def list_rules(caller: NamedDependency[Caller], key: FromPath[str]) -> list[TargetingRule]:
    """The flag's rules in evaluation order: by position, ties by id."""
    return await queries.list_rules((await queries.load_flag(key)).id)


@post("/{key:str}/rules", operation_id="createFlagRule", status_code=201)
async def create_rule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[RuleCreate],
) -> TargetingRule:
    return await service.create_rule(key, msgspec.structs.asdict(data), caller, request)


@patch("/{key:str}/rules/{rule_id:int}", operation_id="updateFlagRule")
async def update_rule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    rule_id: FromPath[int],
    data: JSONBody[RuleUpdate],
) -> TargetingRule:
    return await service.update_rule(key, rule_id, given_fields(data), caller, request)


@delete("/{key:str}/rules/{rule_id:int}", operation_id="deleteFlagRule")
async def delete_rule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    rule_id: FromPath[int],
) -> None:
    await service.delete_rule(key, rule_id, caller, request)


# ---- segments ------------------------------------------------------------------------------


@get("/", operation_id="listSegments")
async def list_segments(caller: NamedDependency[Caller]) -> list[SegmentOut]:
    return await queries.list_segments()


@get("/{key:str}", operation_id="getSegment")
async def get_segment(caller: NamedDependency[Caller], key: FromPath[str]) -> SegmentOut:
    return await queries.load_segment(key)


@post("/", operation_id="createSegment", status_code=201)
async def create_segment(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    data: JSONBody[SegmentCreate],
) -> SegmentOut:
    return await service.create_segment(msgspec.structs.asdict(data), caller, request)


@patch("/{key:str}", operation_id="updateSegment")
async def update_segment(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[SegmentUpdate],
) -> SegmentOut:
    """Change a segment: every rule naming it follows at once."""
    return await service.update_segment(key, given_fields(data), caller, request)


@delete("/{key:str}", operation_id="deleteSegment")
async def delete_segment(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller], key: FromPath[str]
) -> None:
    """Delete a segment no rule uses (409 naming a rule that still does)."""
    await service.delete_segment(key, caller, request)
