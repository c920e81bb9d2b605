"""The flags domain's data access outside the service's own writes: rows of the flag tables
as the management API answers them, found (and locked, for a write) through their flag; the
reads the rules decide on; the evaluation cache's loaders (`store` decides what to keep);
the usage counter's flush; the scheduler's claim of due changes. Column lists come from the
response Structs, so a field added to one is read too. No other flags module holds SQL or
builder reads (tests/unit/test_layout.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
from piccolo.columns import Column
from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from piccolo.query.functions.aggregate import Max
from piccolo.querystring import QueryString
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
from api.platform.db.sql import fetch
from api.platform.http.errors import NotFound
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


# ---- what the rules decide on --------------------------------------------------------------


async def override_naming_variant(flag_id: int, names: list[str]) -> str | None:
    """One of `names` that an override of the flag still names."""
    rows = await FeatureFlagOverride.select(FeatureFlagOverride.variant).where(
        (FeatureFlagOverride.flag_id == flag_id) & FeatureFlagOverride.variant.is_in(names)
    )
    return str(rows[0]["variant"]) if rows else None


async def pending_schedule_naming_variant(flag_id: int, names: list[str]) -> str | None:
    """One of `names` that a pending scheduled change of the flag still names."""
    rows = await FeatureFlagSchedule.select(FeatureFlagSchedule.variant).where(
        (FeatureFlagSchedule.flag_id == flag_id)
        & (FeatureFlagSchedule.status == ScheduleStatus.pending)
        & FeatureFlagSchedule.variant.is_in(names)
    )
    return str(rows[0]["variant"]) if rows else None


async def rule_variants(flag_id: int) -> list[dict[str, Any]]:
    """The name, variant and split of each of the flag's rules, in evaluation order."""
    rows: list[dict[str, Any]] = (
        await FeatureFlagRule.select(
            FeatureFlagRule.name, FeatureFlagRule.variant, FeatureFlagRule.split
        )
        .where(FeatureFlagRule.flag_id == flag_id)
        .order_by(FeatureFlagRule.position)
        .order_by(FeatureFlagRule.id)
        .output(load_json=True)
    )
    return rows


async def other_rule_conditions(flag_id: int, rule_id: int | None) -> list[Any]:
    """The conditions of every rule of the flag but `rule_id` (the one being rewritten)."""
    query = FeatureFlagRule.select(FeatureFlagRule.conditions).where(
        FeatureFlagRule.flag_id == flag_id
    )
    if rule_id is not None:
        query = query.where(FeatureFlagRule.id != rule_id)
    return [row["conditions"] for row in await query.output(load_json=True)]


async def user_id_by_email(email: str) -> int | None:
    row = await User.select(User.id).where(User.email == email).first()
    return None if row is None else int(row["id"])


# ---- the evaluation cache's loaders --------------------------------------------------------

DEFINITION_COLUMNS = (
    FeatureFlag.id,
    FeatureFlag.key,
    FeatureFlag.name,
    FeatureFlag.enabled,
    FeatureFlag.rollout_percentage,
    FeatureFlag.archived,
    FeatureFlag.version,
    FeatureFlag.flag_type,
    FeatureFlag.variants,
    FeatureFlag.default_variant,
    FeatureFlag.off_variant,
    FeatureFlag.rollout_split,
)
RULE_COLUMNS = (
    FeatureFlagRule.flag_id,
    FeatureFlagRule.name,
    FeatureFlagRule.segment_id,
    FeatureFlagRule.conditions,
    FeatureFlagRule.variant,
    FeatureFlagRule.split,
)


async def definition_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """Every flag (by key), every rule (by flag, in evaluation order) and every segment, as
    stored: `store` checks each with the writers' validation before serving it."""
    flag_rows = (
        await FeatureFlag.select(*DEFINITION_COLUMNS)
        .order_by(FeatureFlag.key)
        .output(load_json=True)
    )
    rule_rows = (
        await FeatureFlagRule.select(*RULE_COLUMNS)
        .order_by(FeatureFlagRule.flag_id, FeatureFlagRule.position, FeatureFlagRule.id)
        .output(load_json=True)
    )
    segment_rows = await Segment.select(Segment.id, Segment.key, Segment.conditions).output(
        load_json=True
    )
    return flag_rows, rule_rows, segment_rows


TARGETING_QUERY = """
WITH node AS (
  SELECT n.path FROM organization_hierarchy n
  WHERE n.id = COALESCE($2, (
    SELECT a.node_id FROM user_hierarchy_assignments a
    WHERE a.user_id = $1 AND a.is_active ORDER BY a.is_primary DESC, a.id LIMIT 1))
), org AS (
  SELECT g.id, g.slug, g.settings FROM organization_hierarchy g
  WHERE g.id = (SELECT path[1] FROM node)
)
SELECT (SELECT path FROM node) AS path, (SELECT email FROM users WHERE id = $1) AS email,
       (SELECT id FROM org) AS org_id, (SELECT slug FROM org) AS org_slug,
       (SELECT settings::text FROM org) AS org_settings,
       o.flag_id, o.user_id, o.node_id, o.variant, o.expires_at
FROM (SELECT 1) AS one
LEFT JOIN feature_flag_overrides o
  ON (o.user_id = $1 OR o.node_id = ANY(COALESCE((SELECT path FROM node), '{}')))
 AND (o.expires_at IS NULL OR o.expires_at > now())
"""
"""The hot path's one query: the user's node path, e-mail and organisation, and the
unexpired overrides on that path (one row with NULL override columns when there are none)."""


async def targeting_rows(user_id: int, node_id: int | None) -> list[Any]:
    return await fetch(TARGETING_QUERY, user_id, node_id)


# ---- usage counts --------------------------------------------------------------------------

UPSERT = """
INSERT INTO feature_flag_usage (flag_id, hour, variant, evaluations, last_evaluated_at)
SELECT u.flag_id, u.hour, u.variant, u.evaluations, u.last_evaluated_at
FROM unnest($1::int[], $2::timestamptz[], $3::text[], $4::bigint[], $5::timestamptz[])
  AS u(flag_id, hour, variant, evaluations, last_evaluated_at)
WHERE EXISTS (SELECT 1 FROM feature_flags f WHERE f.id = u.flag_id)
ORDER BY u.flag_id, u.hour, u.variant
ON CONFLICT (flag_id, hour, variant) DO UPDATE
SET evaluations = feature_flag_usage.evaluations + EXCLUDED.evaluations,
    last_evaluated_at = greatest(feature_flag_usage.last_evaluated_at,
                                 EXCLUDED.last_evaluated_at)
"""
"""Adds one flush's counts; rows of flags deleted meanwhile are left out. Sorted, so two
replicas flushing at once lock rows in the same order."""


async def add_usage(
    flag_ids: list[int],
    hours: list[datetime],
    variants: list[str],
    evaluations: list[int],
    last_evaluated: list[datetime],
) -> None:
    """One flush's counts, by (flag, hour, variant), added in one statement."""
    await fetch(UPSERT, flag_ids, hours, variants, evaluations, last_evaluated)


# ---- the scheduler -------------------------------------------------------------------------


async def claim_due_schedule(skip: list[int]) -> dict[str, Any] | None:
    """The earliest due pending change that no other transaction holds (ids in `skip`
    aside), locked until this transaction ends (SKIP LOCKED: replicas never wait on each
    other, and each change is claimed by one)."""
    query = (
        FeatureFlagSchedule.select(
            FeatureFlagSchedule.id,
            FeatureFlagSchedule.flag_id,
            FeatureFlagSchedule.action,
            FeatureFlagSchedule.rollout_percentage,
            FeatureFlagSchedule.variant,
            FeatureFlagSchedule.created_by_id,
        )
        .where(
            FeatureFlagSchedule.status == ScheduleStatus.pending.value,
            WhereRaw("run_at <= now()"),  # the database's clock, the same for every replica
        )
        .order_by(FeatureFlagSchedule.run_at, FeatureFlagSchedule.id)
        .limit(1)
        .lock_rows("UPDATE", skip_locked=True, of=(FeatureFlagSchedule,))
    )
    if skip:
        query = query.where(FeatureFlagSchedule.id.not_in(skip))
    rows = await query
    return dict(rows[0]) if rows else None


async def active_super_admin(user_id: int | None) -> dict[str, Any] | None:
    """The user's id and e-mail while they are an active super-admin."""
    if user_id is None:
        return None
    row = (
        await User.select(User.id, User.email)
        .where((User.id == user_id) & (User.is_active == True) & (User.is_super_admin == True))  # noqa: E712
        .first()
    )
    return None if row is None else dict(row)


async def mark_schedule_done(schedule_id: int, status: ScheduleStatus, outcome: str) -> None:
    """The change's status, its outcome sentence and `applied_at` (the database's clock)."""
    await FeatureFlagSchedule.update(
        {
            FeatureFlagSchedule.status: status.value,
            FeatureFlagSchedule.outcome: outcome,
            FeatureFlagSchedule.applied_at: QueryString("now()"),
        }
    ).where(FeatureFlagSchedule.id == schedule_id)


OVERDUE_AFTER = "1 minute"
"""A pending change due longer ago than this is overdue: every process looks every
`SCHEDULER_INTERVAL` seconds, so only a scheduler that cannot apply it leaves it there."""


async def count_pending_schedules() -> tuple[int, int]:
    """(pending, overdue) scheduled changes, by the database's clock."""
    pending = FeatureFlagSchedule.status == ScheduleStatus.pending.value
    total = await FeatureFlagSchedule.count().where(pending)
    overdue = await FeatureFlagSchedule.count().where(
        pending, WhereRaw(f"run_at <= now() - interval '{OVERDUE_AFTER}'")
    )
    return total, overdue


# ---- promotion (export and import) ---------------------------------------------------------


async def all_rules() -> list[TargetingRule]:
    """Every rule, by flag, in evaluation order (position, ties by id)."""
    rows = (
        await FeatureFlagRule.select(*TARGETING_RULE_COLUMNS)
        .order_by(FeatureFlagRule.flag_id, FeatureFlagRule.position, FeatureFlagRule.id)
        .output(load_json=True)
    )
    return [as_struct(row, TargetingRule) for row in rows]


async def pending_schedules() -> list[Schedule]:
    """Every pending scheduled change, by flag, then time."""
    rows = (
        await FeatureFlagSchedule.select(*SCHEDULE_COLUMNS)
        .where(FeatureFlagSchedule.status == ScheduleStatus.pending.value)
        .order_by(FeatureFlagSchedule.flag_id, FeatureFlagSchedule.run_at, FeatureFlagSchedule.id)
    )
    return [msgspec.convert(row, Schedule) for row in rows]


async def node_overrides() -> list[Override]:
    """Every override that targets a node (user overrides are not promoted)."""
    rows = (
        await FeatureFlagOverride.select(*OVERRIDE_COLUMNS)
        .where(FeatureFlagOverride.node_id.is_not_null())
        .order_by(FeatureFlagOverride.flag_id, FeatureFlagOverride.id)
    )
    return [msgspec.convert(row, Override) for row in rows]


async def node_slug_paths() -> dict[int, str]:
    """Each hierarchy node's path of slugs from the root (`acme/emea/sales`): how a node is
    named across databases, whose ids differ."""
    rows = await HierarchyNode.select(HierarchyNode.id, HierarchyNode.slug, HierarchyNode.path)
    slugs = {row["id"]: row["slug"] for row in rows}
    return {row["id"]: "/".join(slugs[i] for i in row["path"]) for row in rows}


async def active_super_admin_by_email(email: str) -> dict[str, Any] | None:
    """The id and e-mail of the active super-admin with this address (the CLI's operator)."""
    row = (
        await User.select(User.id, User.email)
        .where((User.email == email) & (User.is_active == True) & (User.is_super_admin == True))  # noqa: E712
        .first()
    )
    return None if row is None else dict(row)
