"""The one write path of the flags domain: the management API's handlers and Piccolo
Admin's hooks (api/flags/admin_ui.py) both call these functions.

Each write is one `audited_change`: it locks the flag's row first (so a change of its
variants and a write naming one of them never pass each other), compares `version` where
the table has one, validates with `api.flags.rules`, writes only the fields whose value
changes, records the audit row and announces `feature_flags_changed`, which this process's
flag cache applies at commit, before the writer answers (read-your-writes); other replicas
get the triggers' NOTIFY. A change that changes nothing writes nothing: no version bump, no
audit row, no announcement. Scheduled changes are outside what the cache holds, so their
writes announce nothing; when one is due, the scheduler applies it here too
(`apply_scheduled_change`, through `update_flag`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec
from litestar.connection import ASGIConnection
from piccolo.table import Table

from api.auth.identity import Caller
from api.flags import queries
from api.flags.queries import (
    FLAG_COLUMNS,
    OVERRIDE_COLUMNS,
    SCHEDULE_COLUMNS,
    SEGMENT_COLUMNS,
    TARGETING_RULE_COLUMNS,
    FlagRef,
    as_flag,
    as_struct,
)
from api.flags.rules import (
    override_variant,
    require_current_version,
    require_flag_pattern_budget,
    require_variants_unused,
    validate_flag_changes,
    validate_override,
    validate_rule,
    validate_schedule,
    validate_schedule_change,
    validate_segment,
)
from api.flags.schemas import Flag, Override, Schedule, SegmentOut, TargetingRule
from api.platform.db.audit import audited_change
from api.platform.db.changes import announce
from api.platform.http.errors import Conflict, NotFound
from tables.enums import ScheduleAction, ScheduleStatus
from tables.flags import (
    FeatureFlag,
    FeatureFlagOverride,
    FeatureFlagRule,
    FeatureFlagSchedule,
    Segment,
)
from tables.hierarchy import HierarchyNode
from tables.users import User

CHANNEL = "feature_flags_changed"
Connection = ASGIConnection[Any, Any, Any, Any] | None


def _changed(before: msgspec.Struct, cleaned: Mapping[str, Any]) -> dict[str, Any]:
    """The cleaned fields whose value differs from the row's."""
    return {k: v for k, v in cleaned.items() if getattr(before, k) != v}


def _values(table: type[Table], fields: Mapping[str, Any]) -> dict[Any, Any]:
    return {table._meta.get_column_by_name(k): v for k, v in fields.items()}


# ---- flags ---------------------------------------------------------------------------------


async def create_flag(fields: dict[str, Any], actor: Caller, connection: Connection) -> Flag:
    cleaned = validate_flag_changes(fields)
    row = FeatureFlag(**cleaned, created_by_id=actor.user_id, updated_by_id=actor.user_id)
    async with audited_change(
        "feature_flag.created", "feature_flag", actor=actor, connection=connection
    ) as change:
        try:
            rows = await FeatureFlag.insert(row).returning(*FLAG_COLUMNS)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"A flag named {cleaned['key']!r} exists", extra={"field": "key"}
            ) from None
        flag = change.after = as_flag(rows[0])
        change.resource_id = flag.key
        announce(CHANNEL, "feature_flags")
    return flag


async def update_flag(
    ref: FlagRef,
    version: int,
    changes: dict[str, Any],
    actor: Caller,
    connection: Connection,
    *,
    action: str | None = None,
    noted: Mapping[str, Any] | None = None,
) -> Flag:
    """Change a flag built on `version` (409 when it is not the current one). A variant still
    named by an override, rule or pending change stays. The trigger bumps the version.
    `action` and `noted` (added to the audit's `after`) name a writer other than a person's
    edit: the scheduler (`apply_scheduled_change`)."""
    if action is None:
        action = "feature_flag.archived" if changes.get("archived") else "feature_flag.updated"
    async with audited_change(action, "feature_flag", actor=actor, connection=connection) as change:
        before = change.before = await queries.load_flag(ref, lock=True)
        change.resource_id = before.key
        require_current_version(before.version, version)
        cleaned = validate_flag_changes(changes, current=msgspec.to_builtins(before))
        cleaned = _changed(before, cleaned)
        if not cleaned:
            change.skip = True
            return before
        if "variants" in cleaned:
            await require_variants_unused(before.id, before.variants, cleaned["variants"])
        values = _values(FeatureFlag, cleaned)
        values[FeatureFlag.updated_by_id] = actor.user_id
        try:
            rows = await (
                FeatureFlag.update(values)
                .where(FeatureFlag.id == before.id)
                .returning(*FLAG_COLUMNS)
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"A flag named {cleaned.get('key')!r} exists", extra={"field": "key"}
            ) from None
        after = change.after = as_flag(rows[0])
        if noted:
            change.after = {**msgspec.to_builtins(after), **noted}
        announce(CHANNEL, "feature_flags")
    return after


# ---- overrides -----------------------------------------------------------------------------


async def _require_target(user_id: int | None, node_id: int | None) -> None:
    if user_id is not None:
        if not await User.exists().where(User.id == user_id):
            raise NotFound("No such user", extra={"field": "user_id"})
    elif not await HierarchyNode.exists().where(HierarchyNode.id == node_id):
        raise NotFound("No such node", extra={"field": "node_id"})


def _target_taken() -> Conflict:
    return Conflict("This target already has an override for the flag", extra={"field": "target"})


async def create_override(
    ref: FlagRef, fields: Mapping[str, Any], actor: Caller, connection: Connection
) -> Override:
    """`fields`: variant (or `enabled` for a boolean flag), user_id or node_id, reason,
    expires_at."""
    async with audited_change(
        "feature_flag_override.created",
        "feature_flag_override",
        actor=actor,
        connection=connection,
    ) as change:
        flag = await queries.load_flag(ref, lock=True)
        variant = override_variant(flag.flag_type, fields.get("variant"), fields.get("enabled"))
        user_id, node_id = fields.get("user_id"), fields.get("node_id")
        reason = fields.get("reason", "")
        validate_override(
            user_id=user_id,
            node_id=node_id,
            variant=variant,
            variants=flag.variants,
            reason=reason,
            expires_at=fields.get("expires_at"),
        )
        await _require_target(user_id, node_id)
        row = FeatureFlagOverride(
            flag_id=flag.id,
            user_id=user_id,
            node_id=node_id,
            variant=variant,
            reason=reason,
            expires_at=fields.get("expires_at"),
            created_by_id=actor.user_id,
        )
        try:
            rows = await FeatureFlagOverride.insert(row).returning(*OVERRIDE_COLUMNS)
        except asyncpg.UniqueViolationError:
            raise _target_taken() from None
        override = msgspec.convert(rows[0], Override)
        change.resource_id = override.id
        change.after = {"flag": flag.key, **msgspec.to_builtins(override)}
        announce(CHANNEL, "feature_flag_overrides")
    return override


async def update_override(
    override_id: int, changes: dict[str, Any], actor: Caller, connection: Connection
) -> Override:
    """Change an override (the admin edits them; the REST API replaces them)."""
    flag_id = await queries.override_flag_id(override_id)
    async with audited_change(
        "feature_flag_override.updated",
        "feature_flag_override",
        actor=actor,
        connection=connection,
        resource_id=override_id,
    ) as change:
        flag = await queries.load_flag(flag_id, lock=True)
        before = await queries.load_override(override_id, flag.id)
        change.before = {"flag": flag.key, **msgspec.to_builtins(before)}
        changed = _changed(before, changes)
        if not changed:
            change.skip = True
            return before
        if "flag_id" in changed:
            raise Conflict("flag_id cannot be changed", extra={"field": "flag_id"})
        row = {**msgspec.structs.asdict(before), **changed}
        validate_override(
            user_id=row["user_id"],
            node_id=row["node_id"],
            variant=row["variant"],
            variants=flag.variants,
            reason=row["reason"],
            expires_at=row["expires_at"] if "expires_at" in changed else None,
        )
        if "user_id" in changed or "node_id" in changed:
            await _require_target(row["user_id"], row["node_id"])
        try:
            rows = await (
                FeatureFlagOverride.update(_values(FeatureFlagOverride, changed))
                .where(FeatureFlagOverride.id == override_id)
                .returning(*OVERRIDE_COLUMNS)
            )
        except asyncpg.UniqueViolationError:
            raise _target_taken() from None
        override = msgspec.convert(rows[0], Override)
        change.after = {"flag": flag.key, **msgspec.to_builtins(override)}
        announce(CHANNEL, "feature_flag_overrides")
    return override


async def delete_override(
    ref: FlagRef | None, override_id: int, actor: Caller, connection: Connection
) -> None:
    """Delete an override; `ref` when the path names its flag (404 across flags)."""
    async with audited_change(
        "feature_flag_override.deleted",
        "feature_flag_override",
        actor=actor,
        connection=connection,
        resource_id=override_id,
    ) as change:
        flag_ref = ref if ref is not None else await queries.override_flag_id(override_id)
        flag = await queries.load_flag(flag_ref, lock=True)
        before = await queries.load_override(override_id, flag.id)
        change.before = {"flag": flag.key, **msgspec.to_builtins(before)}
        await FeatureFlagOverride.delete().where(FeatureFlagOverride.id == override_id)
        announce(CHANNEL, "feature_flag_overrides")


# ---- targeting rules -----------------------------------------------------------------------


async def _require_segment(segment_id: int | None) -> None:
    if segment_id is not None and not await queries.segment_exists(segment_id):
        raise NotFound("No such segment", extra={"field": "segment_id"})


def _rule_name_taken(name: Any) -> Conflict:
    return Conflict(f"The flag already has a rule named {name!r}", extra={"field": "name"})


async def create_rule(
    ref: FlagRef, fields: dict[str, Any], actor: Caller, connection: Connection
) -> TargetingRule:
    async with audited_change(
        "feature_flag_rule.created", "feature_flag_rule", actor=actor, connection=connection
    ) as change:
        flag = await queries.load_flag(ref, lock=True)
        row = {"position": 0, "conditions": [], "segment_id": None, "variant": None, "split": None}
        row.update(fields)
        row.pop("flag_id", None)
        cleaned = {**row, **validate_rule(row, row, flag.variants)}
        await require_flag_pattern_budget(flag.id, None, cleaned.get("conditions"))
        await _require_segment(cleaned["segment_id"])
        try:
            rows = await FeatureFlagRule.insert(
                FeatureFlagRule(**cleaned, flag_id=flag.id, created_by_id=actor.user_id)
            ).returning(*TARGETING_RULE_COLUMNS)
        except asyncpg.UniqueViolationError:
            raise _rule_name_taken(cleaned.get("name")) from None
        rule = change.after = as_struct(rows[0], TargetingRule)
        change.resource_id = rule.id
        announce(CHANNEL, "feature_flag_rules")
    return rule


async def update_rule(
    ref: FlagRef | None,
    rule_id: int,
    changes: dict[str, Any],
    actor: Caller,
    connection: Connection,
) -> TargetingRule:
    """Change a rule; `ref` when the path names its flag (404 across flags)."""
    async with audited_change(
        "feature_flag_rule.updated",
        "feature_flag_rule",
        actor=actor,
        connection=connection,
        resource_id=rule_id,
    ) as change:
        flag_ref = ref if ref is not None else await queries.rule_flag_id(rule_id)
        flag = await queries.load_flag(flag_ref, lock=True)
        before = change.before = await queries.load_rule(rule_id, flag.id, lock=True)
        if "flag_id" in changes and changes["flag_id"] != before.flag_id:
            raise Conflict("flag_id cannot be changed", extra={"field": "flag_id"})
        changes = {k: v for k, v in changes.items() if k != "flag_id"}
        row = {**msgspec.to_builtins(before), **changes}
        cleaned = _changed(before, validate_rule(changes, row, flag.variants))
        if not cleaned:
            change.skip = True
            return before
        await require_flag_pattern_budget(flag.id, rule_id, cleaned.get("conditions"))
        if "segment_id" in cleaned:
            await _require_segment(cleaned["segment_id"])
        try:
            rows = await (
                FeatureFlagRule.update(_values(FeatureFlagRule, cleaned))
                .where(FeatureFlagRule.id == rule_id)
                .returning(*TARGETING_RULE_COLUMNS)
            )
        except asyncpg.UniqueViolationError:
            raise _rule_name_taken(cleaned.get("name")) from None
        rule = change.after = as_struct(rows[0], TargetingRule)
        announce(CHANNEL, "feature_flag_rules")
    return rule


async def delete_rule(
    ref: FlagRef | None, rule_id: int, actor: Caller, connection: Connection
) -> None:
    async with audited_change(
        "feature_flag_rule.deleted",
        "feature_flag_rule",
        actor=actor,
        connection=connection,
        resource_id=rule_id,
    ) as change:
        flag_ref = ref if ref is not None else await queries.rule_flag_id(rule_id)
        flag = await queries.load_flag(flag_ref, lock=True)
        change.before = await queries.load_rule(rule_id, flag.id, lock=True)
        await FeatureFlagRule.delete().where(FeatureFlagRule.id == rule_id)
        announce(CHANNEL, "feature_flag_rules")


# ---- segments ------------------------------------------------------------------------------


def _segment_key_taken(key: Any) -> Conflict:
    return Conflict(f"A segment named {key!r} exists", extra={"field": "key"})


async def create_segment(
    fields: dict[str, Any], actor: Caller, connection: Connection
) -> SegmentOut:
    row = {"description": "", "conditions": [], **fields}
    cleaned = validate_segment(row)
    async with audited_change(
        "segment.created", "segment", actor=actor, connection=connection
    ) as change:
        try:
            rows = await Segment.insert(Segment(**cleaned, created_by_id=actor.user_id)).returning(
                *SEGMENT_COLUMNS
            )
        except asyncpg.UniqueViolationError:
            raise _segment_key_taken(cleaned.get("key")) from None
        segment = change.after = as_struct(rows[0], SegmentOut)
        change.resource_id = segment.id
        announce(CHANNEL, "segments")
    return segment


async def update_segment(
    ref: FlagRef, changes: dict[str, Any], actor: Caller, connection: Connection
) -> SegmentOut:
    """Change a segment: every rule naming it follows at once."""
    cleaned = validate_segment(changes)
    async with audited_change(
        "segment.updated", "segment", actor=actor, connection=connection
    ) as change:
        before = change.before = await queries.load_segment(ref, lock=True)
        change.resource_id = before.id
        cleaned = _changed(before, cleaned)
        if not cleaned:
            change.skip = True
            return before
        try:
            rows = await (
                Segment.update(_values(Segment, cleaned))
                .where(Segment.id == before.id)
                .returning(*SEGMENT_COLUMNS)
            )
        except asyncpg.UniqueViolationError:
            raise _segment_key_taken(cleaned.get("key")) from None
        segment = change.after = as_struct(rows[0], SegmentOut)
        announce(CHANNEL, "segments")
    return segment


async def delete_segment(ref: FlagRef, actor: Caller, connection: Connection) -> None:
    """Delete a segment no rule uses (409 naming a rule that still does)."""
    async with audited_change(
        "segment.deleted", "segment", actor=actor, connection=connection
    ) as change:
        before = change.before = await queries.load_segment(ref, lock=True)
        change.resource_id = before.id
        user = await queries.rule_using_segment(before.id)
        if user is not None:
            raise Conflict(
                f"The segment is used by the rule {user['name']!r} of the flag"
                f" {user['flag_id.key']!r}; change or remove that rule first",
                extra={"reason": "segment_in_use"},
            )
        await Segment.delete().where(Segment.id == before.id)
        announce(CHANNEL, "segments")


# ---- scheduled changes ---------------------------------------------------------------------


async def create_schedule(
    ref: FlagRef, fields: Mapping[str, Any], actor: Caller, connection: Connection
) -> Schedule:
    """Schedule a change, applied once at `run_at` as the super-admin who scheduled it."""
    async with audited_change(
        "feature_flag_schedule.created",
        "feature_flag_schedule",
        actor=actor,
        connection=connection,
    ) as change:
        flag = await queries.load_flag(ref, lock=True)
        cleaned = validate_schedule(
            action=fields.get("action"),
            run_at=fields.get("run_at"),
            rollout_percentage=fields.get("rollout_percentage"),
            variant=fields.get("variant"),
            note=fields.get("note", ""),
            variants=flag.variants,
        )
        row = FeatureFlagSchedule(**cleaned, flag_id=flag.id, created_by_id=actor.user_id)
        rows = await FeatureFlagSchedule.insert(row).returning(*SCHEDULE_COLUMNS)
        schedule = change.after = msgspec.convert(rows[0], Schedule)
        change.resource_id = schedule.id
    return schedule


async def change_schedule(
    ref: FlagRef | None,
    schedule_id: int,
    changes: Mapping[str, Any],
    actor: Caller,
    connection: Connection,
) -> Schedule:
    """After creation a change can only be cancelled, and only while pending (409)."""
    async with audited_change(
        "feature_flag_schedule.cancelled",
        "feature_flag_schedule",
        actor=actor,
        connection=connection,
        resource_id=schedule_id,
    ) as change:
        flag_id = None if ref is None else (await queries.load_flag(ref)).id
        before = change.before = await queries.load_schedule(schedule_id, flag_id)
        validate_schedule_change(before.status, changes)
        rows = await (
            FeatureFlagSchedule.update({FeatureFlagSchedule.status: ScheduleStatus.cancelled})
            .where(FeatureFlagSchedule.id == schedule_id)
            .returning(*SCHEDULE_COLUMNS)
        )
        schedule = change.after = msgspec.convert(rows[0], Schedule)
    return schedule


SCHEDULED_FIELDS = {
    ScheduleAction.enable: "enabled",
    ScheduleAction.disable: "enabled",
    ScheduleAction.set_rollout: "rollout_percentage",
    ScheduleAction.set_default_variant: "default_variant",
}
"""The flag field each scheduled action sets."""


def scheduled_changes(due: Mapping[str, Any]) -> dict[str, Any]:
    """The flag fields a due scheduled change sets."""
    action = ScheduleAction(due["action"])
    field = SCHEDULED_FIELDS[action]
    if action is ScheduleAction.enable or action is ScheduleAction.disable:
        return {field: action is ScheduleAction.enable}
    if action is ScheduleAction.set_rollout:
        return {field: due["rollout_percentage"]}
    return {field: due["variant"]}


async def apply_scheduled_change(flag: Flag, due: Mapping[str, Any], author: Caller) -> bool:
    """Apply a due scheduled change to `flag` (read and locked by the scheduler in this
    transaction) as `update_flag` does any change: the rules check it, only a real change is
    written, audited as `feature_flag.scheduled_<action>` by its author with the schedule's
    id, and announced. Whether the flag changed; refusals are the rules' AppErrors."""
    action = ScheduleAction(due["action"])
    after = await update_flag(
        flag.id,
        flag.version,
        scheduled_changes(due),
        author,
        None,
        action=f"feature_flag.scheduled_{action.value}",
        noted={"schedule_id": due["id"], "applied_by": "scheduler"},
    )
    return after.version != flag.version


async def record_schedule_outcome(
    schedule_id: int, status: ScheduleStatus, outcome: str, author: Caller | None, *, wrote: bool
) -> None:
    """A claimed change's status and outcome. When it `wrote` the flag, the flag's audit
    record names it and the schedule row's trigger records the status as the author's;
    otherwise (failed, or nothing to change) this records what happened."""
    if wrote:
        await queries.mark_schedule_done(schedule_id, status, outcome)
        return
    async with audited_change(
        f"feature_flag_schedule.{status.value}",
        "feature_flag_schedule",
        actor=author,
        connection=None,
        resource_id=schedule_id,
        before={"status": ScheduleStatus.pending.value},
    ) as change:
        await queries.mark_schedule_done(schedule_id, status, outcome)
        change.after = {"status": status.value, "outcome": outcome}


async def cancel_schedule(
    ref: FlagRef, schedule_id: int, actor: Caller, connection: Connection
) -> Schedule:
    return await change_schedule(
        ref, schedule_id, {"status": ScheduleStatus.cancelled}, actor, connection
    )
