"""The feature-flag admin API for super-admins (PRODUCT §4, docs/FLAGS.md): flags, their
overrides, targeting rules, scheduled changes and usage, and the shared segments. Every
change is audited, in the transaction that makes it.

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

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.audit import audited_change
from api.auth.deps import SUPER_ADMIN
from api.auth.identity import Caller
from api.errors import Conflict, NotFound
from api.flags.stale import StaleFlag, stale_flags
from api.flags.store import flag_cache
from api.flags.validation import (
    override_variant,
    removed_variants,
    require_current_version,
    require_variants_unused,
    validate_flag_changes,
    validate_override,
    validate_rule,
    validate_schedule,
    validate_schedule_change,
    validate_segment,
)
from api.schema import require_schema_and_strict_body
from tables.enums import ScheduleStatus
from tables.flags import (
    FeatureFlag,
    FeatureFlagOverride,
    FeatureFlagRule,
    FeatureFlagSchedule,
    FeatureFlagUsage,
    Segment,
)
from tables.hierarchy import HierarchyNode
from tables.users import User

FLAG_COLUMNS = (
    FeatureFlag.id,
    FeatureFlag.key,
    FeatureFlag.name,
    FeatureFlag.description,
    FeatureFlag.enabled,
    FeatureFlag.rollout_percentage,
    FeatureFlag.flag_type,
    FeatureFlag.variants,
    FeatureFlag.default_variant,
    FeatureFlag.off_variant,
    FeatureFlag.rollout_split,
    FeatureFlag.rollout_changed_at,
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
SCHEDULE_COLUMNS = (
    FeatureFlagSchedule.id,
    FeatureFlagSchedule.flag_id,
    FeatureFlagSchedule.action,
    FeatureFlagSchedule.rollout_percentage,
    FeatureFlagSchedule.variant,
    FeatureFlagSchedule.run_at,
    FeatureFlagSchedule.status,
    FeatureFlagSchedule.note,
    FeatureFlagSchedule.outcome,
    FeatureFlagSchedule.applied_at,
    FeatureFlagSchedule.created_by_id,
    FeatureFlagSchedule.created_at,
    FeatureFlagSchedule.updated_at,
)

JSON_COLUMNS = frozenset({"variants", "rollout_split", "conditions", "split"})


class Flag(msgspec.Struct):
    id: int
    key: str
    name: str
    description: str
    enabled: bool
    rollout_percentage: Decimal
    flag_type: str
    variants: dict[str, Any]
    default_variant: str
    off_variant: str
    rollout_split: dict[str, int] | None
    rollout_changed_at: datetime
    archived: bool
    version: int
    created_by_id: int | None
    updated_by_id: int | None
    created_at: datetime
    updated_at: datetime


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


class Schedule(msgspec.Struct):
    id: int
    flag_id: int
    action: str
    rollout_percentage: Decimal | None
    variant: str | None
    run_at: datetime
    status: str
    note: str
    outcome: str
    applied_at: datetime | None
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime


class ScheduleCreate(msgspec.Struct, forbid_unknown_fields=True):
    """`set_rollout` takes `rollout_percentage`, `set_default_variant` takes `variant`;
    `enable` and `disable` take neither."""

    action: str
    run_at: datetime
    rollout_percentage: Decimal | None = None
    variant: str | None = None
    note: str = ""


class UsageHour(msgspec.Struct):
    hour: datetime
    variant: str
    evaluations: int
    last_evaluated_at: datetime


class Usage(msgspec.Struct):
    key: str
    last_evaluated_at: datetime | None
    hours: list[UsageHour]


def _json(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its JSON columns read: `returning` gives them as text, selects with
    `load_json` as values."""
    return {
        name: json.loads(value) if name in JSON_COLUMNS and isinstance(value, str) else value
        for name, value in row.items()
    }


def _flag(row: dict[str, Any]) -> Flag:
    return msgspec.convert(_json(row), Flag)


async def _load(key: str, *, lock: bool = False) -> Flag:
    query = FeatureFlag.select(*FLAG_COLUMNS).where(FeatureFlag.key == key).output(load_json=True)
    rows = await (query.lock_rows() if lock else query)
    if not rows:
        raise NotFound(f"No flag named {key!r}", extra={"key": key})
    return _flag(rows[0])


def _given(data: msgspec.Struct, *skip: str) -> dict[str, Any]:
    """The fields a body gave, as plain values (UNSET ones left out)."""
    return {
        name: getattr(data, name)
        for name in data.__struct_fields__
        if name not in skip and getattr(data, name) is not msgspec.UNSET
    }


# ---- flags ---------------------------------------------------------------------------------


@get("/", operation_id="listFlags")
async def list_flags(
    caller: NamedDependency[Caller], include_archived: FromQuery[bool] = False
) -> list[Flag]:
    query = FeatureFlag.select(*FLAG_COLUMNS).order_by(FeatureFlag.key).output(load_json=True)
    if not include_archived:
        query = query.where(FeatureFlag.archived == False)  # noqa: E712
    return [_flag(row) for row in await query]


@post("/", operation_id="createFlag", status_code=201)
async def create_flag(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller], data: JSONBody[FlagCreate]
) -> Flag:
    fields = validate_flag_changes(_given(data))
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
        flag = change.after = _flag(rows[0])
        change.resource_id = flag.key
    flag_cache.invalidate()
    return flag


@get("/stale-flags", operation_id="listStaleFlags")
async def list_stale_flags(
    caller: NamedDependency[Caller],
    days: Annotated[int, QueryParameter(ge=1, le=3650)] = 30,
) -> list[StaleFlag]:
    """Candidates for clean-up: flags not evaluated for `days` days (a flag never evaluated
    counts from its creation), and flags whose rollout has stayed at 0 % or 100 % as long."""
    return await stale_flags(days)


@get("/{key:str}", operation_id="getFlag")
async def get_flag(caller: NamedDependency[Caller], key: FromPath[str]) -> Flag:
    return await _load(key)


async def _apply(
    request: Request[Any, Any, Any], caller: Caller, key: str, version: int, changes: dict[str, Any]
) -> Flag:
    action = "feature_flag.archived" if changes.get("archived") else "feature_flag.updated"
    async with audited_change(
        action, "feature_flag", actor=caller, connection=request, resource_id=key
    ) as change:
        before = change.before = await _load(key, lock=True)
        require_current_version(before.version, version)
        cleaned = validate_flag_changes(changes, current=msgspec.to_builtins(before))
        if "variants" in cleaned:
            await require_variants_unused(
                before.id, removed_variants(before.variants, cleaned["variants"])
            )
        values: dict[Any, Any] = {
            FeatureFlag._meta.get_column_by_name(k): v for k, v in cleaned.items()
        }
        values[FeatureFlag.updated_by_id] = caller.user_id  # version and updated_at: the trigger
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
    """Change name, description, kill switch, rollout or the variants; `version` must be the
    current one. A variant still named by an override, rule or pending change stays."""
    return await _apply(request, caller, key, data.version, _given(data, "version"))


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
    async with audited_change(
        "feature_flag_override.created", "feature_flag_override", actor=caller, connection=request
    ) as change:
        flag = await _load(key, lock=True)
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


# ---- targeting rules -----------------------------------------------------------------------


def _rule(row: dict[str, Any]) -> TargetingRule:
    return msgspec.convert(_json(row), TargetingRule)


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
    flag = await _load(key)
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
        flag = await _load(key, lock=True)
        cleaned = validate_rule(fields, fields, flag.variants)
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
    changes = _given(data)
    async with audited_change(
        "feature_flag_rule.updated",
        "feature_flag_rule",
        actor=caller,
        connection=request,
        resource_id=rule_id,
    ) as change:
        flag = await _load(key, lock=True)
        before = change.before = await _load_rule(flag, rule_id, lock=True)
        cleaned = validate_rule(changes, {**msgspec.to_builtins(before), **changes}, flag.variants)
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
        flag = await _load(key, lock=True)
        change.before = await _load_rule(flag, rule_id)
        await FeatureFlagRule.delete().where(FeatureFlagRule.id == rule_id)
    flag_cache.invalidate()


# ---- scheduled changes ---------------------------------------------------------------------


def _schedule(row: dict[str, Any]) -> Schedule:
    return msgspec.convert(row, Schedule)


@get("/{key:str}/schedules", operation_id="listFlagSchedules")
async def list_schedules(caller: NamedDependency[Caller], key: FromPath[str]) -> list[Schedule]:
    """The flag's scheduled changes, by run time."""
    flag = await _load(key)
    rows = (
        await FeatureFlagSchedule.select(*SCHEDULE_COLUMNS)
        .where(FeatureFlagSchedule.flag_id == flag.id)
        .order_by(FeatureFlagSchedule.run_at)
        .order_by(FeatureFlagSchedule.id)
    )
    return [_schedule(row) for row in rows]


@post("/{key:str}/schedules", operation_id="createFlagSchedule", status_code=201)
async def create_schedule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[ScheduleCreate],
) -> Schedule:
    """Schedule a change, applied once at `run_at` as the super-admin who scheduled it."""
    async with audited_change(
        "feature_flag_schedule.created", "feature_flag_schedule", actor=caller, connection=request
    ) as change:
        flag = await _load(key, lock=True)
        cleaned = validate_schedule(**msgspec.structs.asdict(data), variants=flag.variants)
        row = FeatureFlagSchedule(**cleaned, flag_id=flag.id, created_by_id=caller.user_id)
        rows = await FeatureFlagSchedule.insert(row).returning(*SCHEDULE_COLUMNS)
        schedule = change.after = _schedule(rows[0])
        change.resource_id = schedule.id
    return schedule


@post(
    "/{key:str}/schedules/{schedule_id:int}/cancel",
    operation_id="cancelFlagSchedule",
    status_code=200,
)
async def cancel_schedule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    schedule_id: FromPath[int],
) -> Schedule:
    """Cancel a pending change (409 once it was applied, failed or cancelled)."""
    async with audited_change(
        "feature_flag_schedule.cancelled",
        "feature_flag_schedule",
        actor=caller,
        connection=request,
        resource_id=schedule_id,
    ) as change:
        flag = await _load(key)
        rows = await (
            FeatureFlagSchedule.select(*SCHEDULE_COLUMNS)
            .where(
                (FeatureFlagSchedule.id == schedule_id) & (FeatureFlagSchedule.flag_id == flag.id)
            )
            .lock_rows()  # the scheduler claims due rows with SKIP LOCKED: never both
        )
        if not rows:
            raise NotFound(
                "No such scheduled change for this flag", extra={"schedule_id": schedule_id}
            )
        before = change.before = _schedule(rows[0])
        validate_schedule_change(before.status, {"status": ScheduleStatus.cancelled})
        rows = await (
            FeatureFlagSchedule.update({FeatureFlagSchedule.status: ScheduleStatus.cancelled})
            .where(FeatureFlagSchedule.id == schedule_id)
            .returning(*SCHEDULE_COLUMNS)
        )
        schedule = change.after = _schedule(rows[0])
    return schedule


# ---- usage ---------------------------------------------------------------------------------


@get("/{key:str}/usage", operation_id="getFlagUsage")
async def get_usage(
    caller: NamedDependency[Caller],
    key: FromPath[str],
    days: Annotated[int, QueryParameter(ge=1, le=90)] = 7,
) -> Usage:
    """Evaluations of the flag per hour and variant over the last `days` days, newest first,
    and when it was last evaluated at all."""
    flag = await _load(key)
    since = datetime.now(UTC) - timedelta(days=days)
    rows = (
        await FeatureFlagUsage.select(
            FeatureFlagUsage.hour,
            FeatureFlagUsage.variant,
            FeatureFlagUsage.evaluations,
            FeatureFlagUsage.last_evaluated_at,
        )
        .where((FeatureFlagUsage.flag_id == flag.id) & (FeatureFlagUsage.hour >= since))
        .order_by(FeatureFlagUsage.hour, ascending=False)
        .order_by(FeatureFlagUsage.variant)
    )
    latest = (
        await FeatureFlagUsage.select(FeatureFlagUsage.last_evaluated_at)
        .where(FeatureFlagUsage.flag_id == flag.id)
        .order_by(FeatureFlagUsage.last_evaluated_at, ascending=False)
        .first()
    )
    return Usage(
        key=flag.key,
        last_evaluated_at=latest["last_evaluated_at"] if latest else None,
        hours=[msgspec.convert(row, UsageHour) for row in rows],
    )


# ---- segments ------------------------------------------------------------------------------


def _segment(row: dict[str, Any]) -> SegmentOut:
    return msgspec.convert(_json(row), SegmentOut)


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
    cleaned = validate_segment(_given(data))
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
