"""The flags domain's reads: rows of the flag tables as the management API answers them,
found (and locked, for a write) through their flag. Column lists come from the response
Structs, so a field added to one is read too. The evaluation cache's own loaders stay in
`store` beside the cache they fill."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
from piccolo.columns import Column
from piccolo.custom_types import Combinable
from piccolo.query.functions.aggregate import Max
from piccolo.table import Table

from api.flags.schemas import (
    Flag,
    Override,
    Schedule,
    SegmentOut,
    StaleFlag,
    TargetingRule,
    Usage,
    UsageHour,
)
from api.platform.http.errors import NotFound
from tables.flags import (
    FeatureFlag,
    FeatureFlagOverride,
    FeatureFlagRule,
    FeatureFlagSchedule,
    FeatureFlagUsage,
    Segment,
)

S = TypeVar("S", bound=msgspec.Struct)
FlagRef = str | int
"""A flag by its key (the REST API's paths) or by its id (the admin's rows)."""

NOT_EVALUATED = "not_evaluated"
ROLLOUT_SETTLED = "rollout_settled"


def columns_of(table: type[Table], struct: type[msgspec.Struct]) -> tuple[Column, ...]:
    """The table's columns named by the Struct's fields, in the Struct's order."""
    return tuple(table._meta.get_column_by_name(name) for name in struct.__struct_fields__)


FLAG_COLUMNS = columns_of(FeatureFlag, Flag)
OVERRIDE_COLUMNS = columns_of(FeatureFlagOverride, Override)
TARGETING_RULE_COLUMNS = columns_of(FeatureFlagRule, TargetingRule)
SEGMENT_COLUMNS = columns_of(Segment, SegmentOut)
SCHEDULE_COLUMNS = columns_of(FeatureFlagSchedule, Schedule)
JSON_COLUMNS = frozenset({"variants", "rollout_split", "conditions", "split"})


def read_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its JSON columns read: `returning` gives them as text, selects with
    `load_json` as values."""
    return {
        name: json.loads(value) if name in JSON_COLUMNS and isinstance(value, str) else value
        for name, value in row.items()
    }


def as_struct(row: dict[str, Any], struct: type[S]) -> S:
    return msgspec.convert(read_json(row), struct)


def as_flag(row: dict[str, Any]) -> Flag:
    return as_struct(row, Flag)


async def load_flag(ref: FlagRef, *, lock: bool = False) -> Flag:
    column = FeatureFlag.id if isinstance(ref, int) else FeatureFlag.key
    query = FeatureFlag.select(*FLAG_COLUMNS).where(column == ref).output(load_json=True)
    rows = await (query.lock_rows() if lock else query)
    if not rows:
        raise NotFound(f"No flag named {ref!r}", extra={"key": ref})
    return as_flag(rows[0])


async def list_flags(*, include_archived: bool) -> list[Flag]:
    query = FeatureFlag.select(*FLAG_COLUMNS).order_by(FeatureFlag.key).output(load_json=True)
    if not include_archived:
        query = query.where(FeatureFlag.archived == False)  # noqa: E712
    return [as_flag(row) for row in await query]


# ---- overrides -----------------------------------------------------------------------------


async def list_overrides(flag_id: int) -> list[Override]:
    rows = (
        await FeatureFlagOverride.select(*OVERRIDE_COLUMNS)
        .where(FeatureFlagOverride.flag_id == flag_id)
        .order_by(FeatureFlagOverride.id)
    )
    return [msgspec.convert(row, Override) for row in rows]


async def load_override(override_id: int, flag_id: int | None = None) -> Override:
    """An override, locked; `flag_id` when the path names its flag (404 across flags)."""
    where: Combinable = FeatureFlagOverride.id == override_id
    if flag_id is not None:
        where = where & (FeatureFlagOverride.flag_id == flag_id)
    rows = await FeatureFlagOverride.select(*OVERRIDE_COLUMNS).where(where).lock_rows()
    if not rows:
        raise NotFound("No such override for this flag", extra={"override_id": override_id})
    return msgspec.convert(rows[0], Override)


async def override_flag_id(override_id: int) -> int:
    row = (
        await FeatureFlagOverride.select(FeatureFlagOverride.flag_id)
        .where(FeatureFlagOverride.id == override_id)
        .first()
    )
    if row is None:
        raise NotFound("No such override", extra={"override_id": override_id})
    return int(row["flag_id"])


# ---- targeting rules and segments ----------------------------------------------------------


async def list_rules(flag_id: int) -> list[TargetingRule]:
    """A flag's rules in evaluation order: by position, ties by id."""
    rows = (
        await FeatureFlagRule.select(*TARGETING_RULE_COLUMNS)
        .where(FeatureFlagRule.flag_id == flag_id)
        .order_by(FeatureFlagRule.position)
        .order_by(FeatureFlagRule.id)
        .output(load_json=True)
    )
    return [as_struct(row, TargetingRule) for row in rows]


async def load_rule(
    rule_id: int, flag_id: int | None = None, *, lock: bool = False
) -> TargetingRule:
    where: Combinable = FeatureFlagRule.id == rule_id
    if flag_id is not None:
        where = where & (FeatureFlagRule.flag_id == flag_id)
    query = FeatureFlagRule.select(*TARGETING_RULE_COLUMNS).where(where).output(load_json=True)
    rows = await (query.lock_rows() if lock else query)
    if not rows:
        raise NotFound("No such rule for this flag", extra={"rule_id": rule_id})
    return as_struct(rows[0], TargetingRule)


async def rule_flag_id(rule_id: int) -> int:
    row = (
        await FeatureFlagRule.select(FeatureFlagRule.flag_id)
        .where(FeatureFlagRule.id == rule_id)
        .first()
    )
    if row is None:
        raise NotFound("No such rule", extra={"rule_id": rule_id})
    return int(row["flag_id"])


async def segment_exists(segment_id: int) -> bool:
    return bool(await Segment.exists().where(Segment.id == segment_id))


async def list_segments() -> list[SegmentOut]:
    rows = await Segment.select(*SEGMENT_COLUMNS).order_by(Segment.key).output(load_json=True)
    return [as_struct(row, SegmentOut) for row in rows]


async def load_segment(ref: FlagRef, *, lock: bool = False) -> SegmentOut:
    """A segment by key (REST) or id (admin)."""
    column = Segment.id if isinstance(ref, int) else Segment.key
    query = Segment.select(*SEGMENT_COLUMNS).where(column == ref).output(load_json=True)
    rows = await (query.lock_rows() if lock else query)
    if not rows:
        raise NotFound(f"No segment named {ref!r}", extra={"key": ref})
    return as_struct(rows[0], SegmentOut)


async def rule_using_segment(segment_id: int) -> dict[str, Any] | None:
    """A rule that names the segment (its name and its flag's key), if any."""
    row: dict[str, Any] | None = (
        await FeatureFlagRule.select(FeatureFlagRule.name, FeatureFlagRule.flag_id.key)
        .where(FeatureFlagRule.segment_id == segment_id)
        .first()
    )
    return row


# ---- scheduled changes, usage, stale flags -------------------------------------------------


async def list_schedules(flag_id: int) -> list[Schedule]:
    rows = (
        await FeatureFlagSchedule.select(*SCHEDULE_COLUMNS)
        .where(FeatureFlagSchedule.flag_id == flag_id)
        .order_by(FeatureFlagSchedule.run_at)
        .order_by(FeatureFlagSchedule.id)
    )
    return [msgspec.convert(row, Schedule) for row in rows]


async def load_schedule(schedule_id: int, flag_id: int | None = None) -> Schedule:
    """A scheduled change, locked: the scheduler claims due rows with SKIP LOCKED, so a
    cancel and an apply never both happen."""
    where: Combinable = FeatureFlagSchedule.id == schedule_id
    if flag_id is not None:
        where = where & (FeatureFlagSchedule.flag_id == flag_id)
    rows = await FeatureFlagSchedule.select(*SCHEDULE_COLUMNS).where(where).lock_rows()
    if not rows:
        raise NotFound("No such scheduled change for this flag", extra={"schedule_id": schedule_id})
    return msgspec.convert(rows[0], Schedule)


async def flag_usage(flag: Flag, days: int) -> Usage:
    since = datetime.now(UTC) - timedelta(days=days)
    rows = (
        await FeatureFlagUsage.select(*columns_of(FeatureFlagUsage, UsageHour))
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


async def stale_flags(days: int, now: datetime | None = None) -> list[StaleFlag]:
    """Stale-flag candidates (docs/FLAGS.md, Usage), by key: non-archived flags not evaluated
    for `days` days (a flag never evaluated counts from its creation), or whose rollout has
    stayed at 0 % or 100 % as long (`rollout_changed_at`, kept by a trigger). One answer for
    the management API and the admin's "Stale flags" form."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    latest = {
        row["flag_id"]: row["last"]
        for row in await FeatureFlagUsage.select(
            FeatureFlagUsage.flag_id, Max(FeatureFlagUsage.last_evaluated_at, alias="last")
        ).group_by(FeatureFlagUsage.flag_id)
    }
    flags = (
        await FeatureFlag.select(
            FeatureFlag.id,
            FeatureFlag.key,
            FeatureFlag.name,
            FeatureFlag.rollout_percentage,
            FeatureFlag.rollout_changed_at,
            FeatureFlag.created_at,
        )
        .where(FeatureFlag.archived == False)  # noqa: E712
        .order_by(FeatureFlag.key)
    )
    stale = []
    for flag in flags:
        last = latest.get(flag["id"])
        reasons = []
        if (last or flag["created_at"]) < cutoff:
            reasons.append(NOT_EVALUATED)
        settled = flag["rollout_percentage"] in (Decimal(0), Decimal(100))
        if settled and flag["rollout_changed_at"] < cutoff:
            reasons.append(ROLLOUT_SETTLED)
        if reasons:
            stale.append(
                StaleFlag(
                    key=flag["key"],
                    name=flag["name"],
                    reasons=reasons,
                    last_evaluated_at=last,
                    rollout_percentage=flag["rollout_percentage"],
                    rollout_changed_at=flag["rollout_changed_at"],
                    created_at=flag["created_at"],
                )
            )
    return stale
