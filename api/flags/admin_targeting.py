"""Targeting rules of a flag and the segments rules share (docs/FLAGS.md), for
super-admins: every change audited, a rule reached only through its flag."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from api.auth.identity import Caller
from api.flags.admin_shared import Flag, given_fields, load_flag, read_json
from api.flags.rules import (
    require_flag_pattern_budget,
    validate_rule,
    validate_segment,
)
from api.flags.store import flag_cache
from api.platform.db.audit import audited_change
from api.platform.http.errors import Conflict, NotFound
from tables.flags import (
    FeatureFlagRule,
    Segment,
)

RULE_COLUMNS = (
    FeatureFlagRule.id,
    FeatureFlagRule.flag_id,
    FeatureFlagRule.position,
    FeatureFlagRule.name,
    FeatureFlagRule.segment_id,
    FeatureFlagRule.conditions,
    FeatureFlagRule.variant,
    FeatureFlagRule.split,
    FeatureFlagRule.created_by_id,
    FeatureFlagRule.created_at,
    FeatureFlagRule.updated_at,
)
SEGMENT_COLUMNS = (
    Segment.id,
    Segment.key,
    Segment.name,
    Segment.description,
    Segment.conditions,
    Segment.created_by_id,
    Segment.created_at,
    Segment.updated_at,
)


class TargetingRule(msgspec.Struct):
    id: int
    flag_id: int
    position: int
    name: str
    segment_id: int | None
    conditions: list[Any]
    variant: str | None
    split: dict[str, int] | None
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime


class RuleCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of `variant` and `split` (weights by variant name)."""

    name: str
    position: int = 0
    conditions: list[Any] = msgspec.field(default_factory=list)
    segment_id: int | None = None
    variant: str | None = None
    split: dict[str, Any] | None = None


class RuleUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields given change; to switch from a variant to a split, send
    `"variant": null` with the split."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    position: int | msgspec.UnsetType = msgspec.UNSET
    conditions: list[Any] | msgspec.UnsetType = msgspec.UNSET
    segment_id: int | msgspec.UnsetType | None = msgspec.UNSET
    variant: str | msgspec.UnsetType | None = msgspec.UNSET
    split: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET


class SegmentOut(msgspec.Struct):
    id: int
    key: str
    name: str
    description: str
    conditions: list[Any]
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime


class SegmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    name: str
    description: str = ""
    conditions: list[Any] = msgspec.field(default_factory=list)


class SegmentUpdate(msgspec.Struct, forbid_unknown_fields=True):
    key: str | msgspec.UnsetType = msgspec.UNSET
    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    conditions: list[Any] | msgspec.UnsetType = msgspec.UNSET


# ---- targeting rules -----------------------------------------------------------------------


def _rule(row: dict[str, Any]) -> TargetingRule:
    return msgspec.convert(read_json(row), TargetingRule)


async def _load_rule(flag: Flag, rule_id: int, *, lock: bool = False) -> TargetingRule:
    query = (
        FeatureFlagRule.select(*RULE_COLUMNS)
        .where((FeatureFlagRule.id == rule_id) & (FeatureFlagRule.flag_id == flag.id))
        .output(load_json=True)
    )
    rows = await (query.lock_rows() if lock else query)
    if not rows:
        raise NotFound("No such rule for this flag", extra={"rule_id": rule_id})
    return _rule(rows[0])


async def _require_segment(segment_id: int | None) -> None:
    if segment_id is not None and not await Segment.exists().where(Segment.id == segment_id):
        raise NotFound("No such segment", extra={"field": "segment_id"})


def _rule_name_taken(name: Any) -> Conflict:
    return Conflict(f"The flag already has a rule named {name!r}", extra={"field": "name"})


@get("/{key:str}/rules", operation_id="listFlagRules")
async def list_rules(caller: NamedDependency[Caller], key: FromPath[str]) -> list[TargetingRule]:
    """The flag's rules in evaluation order: by position, ties by id."""
    flag = await load_flag(key)
    rows = (
        await FeatureFlagRule.select(*RULE_COLUMNS)
        .where(FeatureFlagRule.flag_id == flag.id)
        .order_by(FeatureFlagRule.position)
        .order_by(FeatureFlagRule.id)
        .output(load_json=True)
    )
    return [_rule(row) for row in rows]


@post("/{key:str}/rules", operation_id="createFlagRule", status_code=201)
async def create_rule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[RuleCreate],
) -> TargetingRule:
    fields = msgspec.structs.asdict(data)
    async with audited_change(
        "feature_flag_rule.created", "feature_flag_rule", actor=caller, connection=request
    ) as change:
        flag = await load_flag(key, lock=True)
        cleaned = validate_rule(fields, fields, flag.variants)
        await require_flag_pattern_budget(flag.id, None, cleaned.get("conditions"))
        await _require_segment(cleaned["segment_id"])
        row = FeatureFlagRule(**cleaned, flag_id=flag.id, created_by_id=caller.user_id)
        try:
            rows = await FeatureFlagRule.insert(row).returning(*RULE_COLUMNS)
        except asyncpg.UniqueViolationError:
            raise _rule_name_taken(cleaned["name"]) from None
        rule = change.after = _rule(rows[0])
        change.resource_id = rule.id
    flag_cache.invalidate()
    return rule


@patch("/{key:str}/rules/{rule_id:int}", operation_id="updateFlagRule")
async def update_rule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    rule_id: FromPath[int],
    data: JSONBody[RuleUpdate],
) -> TargetingRule:
    changes = given_fields(data)
    async with audited_change(
        "feature_flag_rule.updated",
        "feature_flag_rule",
        actor=caller,
        connection=request,
        resource_id=rule_id,
    ) as change:
        flag = await load_flag(key, lock=True)
        before = change.before = await _load_rule(flag, rule_id, lock=True)
        cleaned = validate_rule(changes, {**msgspec.to_builtins(before), **changes}, flag.variants)
        await require_flag_pattern_budget(flag.id, rule_id, cleaned.get("conditions"))
        if "segment_id" in cleaned:
            await _require_segment(cleaned["segment_id"])
        if not cleaned:
            change.skip = True
            return before
        values: dict[Any, Any] = {
            FeatureFlagRule._meta.get_column_by_name(k): v for k, v in cleaned.items()
        }
        try:
            rows = await (
                FeatureFlagRule.update(values)
                .where(FeatureFlagRule.id == rule_id)
                .returning(*RULE_COLUMNS)
            )
        except asyncpg.UniqueViolationError:
            raise _rule_name_taken(cleaned.get("name")) from None
        rule = change.after = _rule(rows[0])
    flag_cache.invalidate()
    return rule


@delete("/{key:str}/rules/{rule_id:int}", operation_id="deleteFlagRule")
async def delete_rule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    rule_id: FromPath[int],
) -> None:
    async with audited_change(
        "feature_flag_rule.deleted",
        "feature_flag_rule",
        actor=caller,
        connection=request,
        resource_id=rule_id,
    ) as change:
        flag = await load_flag(key, lock=True)
        change.before = await _load_rule(flag, rule_id)
        await FeatureFlagRule.delete().where(FeatureFlagRule.id == rule_id)
    flag_cache.invalidate()


# ---- segments ------------------------------------------------------------------------------


def _segment(row: dict[str, Any]) -> SegmentOut:
    return msgspec.convert(read_json(row), SegmentOut)


async def _load_segment(key: str, *, lock: bool = False) -> SegmentOut:
    query = Segment.select(*SEGMENT_COLUMNS).where(Segment.key == key).output(load_json=True)
    rows = await (query.lock_rows() if lock else query)
    if not rows:
        raise NotFound(f"No segment named {key!r}", extra={"key": key})
    return _segment(rows[0])


def _segment_key_taken(key: Any) -> Conflict:
    return Conflict(f"A segment named {key!r} exists", extra={"field": "key"})


@get("/", operation_id="listSegments")
async def list_segments(caller: NamedDependency[Caller]) -> list[SegmentOut]:
    rows = await Segment.select(*SEGMENT_COLUMNS).order_by(Segment.key).output(load_json=True)
    return [_segment(row) for row in rows]


@get("/{key:str}", operation_id="getSegment")
async def get_segment(caller: NamedDependency[Caller], key: FromPath[str]) -> SegmentOut:
    return await _load_segment(key)


@post("/", operation_id="createSegment", status_code=201)
async def create_segment(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    data: JSONBody[SegmentCreate],
) -> SegmentOut:
    cleaned = validate_segment(msgspec.structs.asdict(data))
    async with audited_change("segment.created", "segment", actor=caller, connection=request) as (
        change
    ):
        try:
            rows = await Segment.insert(Segment(**cleaned, created_by_id=caller.user_id)).returning(
                *SEGMENT_COLUMNS
            )
        except asyncpg.UniqueViolationError:
            raise _segment_key_taken(cleaned["key"]) from None
        segment = change.after = _segment(rows[0])
        change.resource_id = segment.id
    flag_cache.invalidate()
    return segment


@patch("/{key:str}", operation_id="updateSegment")
async def update_segment(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[SegmentUpdate],
) -> SegmentOut:
    """Change a segment: every rule naming it follows at once."""
    cleaned = validate_segment(given_fields(data))
    async with audited_change("segment.updated", "segment", actor=caller, connection=request) as (
        change
    ):
        before = change.before = await _load_segment(key, lock=True)
        change.resource_id = before.id
        if not cleaned:
            change.skip = True
            return before
        values: dict[Any, Any] = {
            Segment._meta.get_column_by_name(k): v for k, v in cleaned.items()
        }
        try:
            rows = await (
                Segment.update(values).where(Segment.id == before.id).returning(*SEGMENT_COLUMNS)
            )
        except asyncpg.UniqueViolationError:
            raise _segment_key_taken(cleaned.get("key")) from None
        segment = change.after = _segment(rows[0])
    flag_cache.invalidate()
    return segment


@delete("/{key:str}", operation_id="deleteSegment")
async def delete_segment(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller], key: FromPath[str]
) -> None:
    """Delete a segment no rule uses (409 naming a rule that still does)."""
    async with audited_change("segment.deleted", "segment", actor=caller, connection=request) as (
        change
    ):
        before = change.before = await _load_segment(key, lock=True)
        change.resource_id = before.id
        user = (
            await FeatureFlagRule.select(FeatureFlagRule.name, FeatureFlagRule.flag_id.key)
            .where(FeatureFlagRule.segment_id == before.id)
            .first()
        )
        if user is not None:
            raise Conflict(
                f"The segment is used by the rule {user['name']!r} of the flag"
                f" {user['flag_id.key']!r}; change or remove that rule first",
                extra={"reason": "segment_in_use"},
            )
        await Segment.delete().where(Segment.id == before.id)
    flag_cache.invalidate()
