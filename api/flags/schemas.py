"""The typed bodies of the flags API: what the management API (super-admins) answers and
accepts. Request fields with a fixed set of values are enums, so msgspec and the OpenAPI
document refuse other values before any handler runs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from tables.enums import FlagType, ScheduleAction, ScheduleStatus

# ---- flags ---------------------------------------------------------------------------------


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
    flag_type: FlagType | msgspec.UnsetType = msgspec.UNSET
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
    flag_type: FlagType | msgspec.UnsetType = msgspec.UNSET
    variants: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    default_variant: str | msgspec.UnsetType = msgspec.UNSET
    off_variant: str | msgspec.UnsetType = msgspec.UNSET
    rollout_split: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET


class ArchiveRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: int


# ---- overrides -----------------------------------------------------------------------------


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


# ---- targeting rules and segments ----------------------------------------------------------


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


# ---- scheduled changes, usage, stale flags -------------------------------------------------


class Schedule(msgspec.Struct):
    id: int
    flag_id: int
    action: ScheduleAction
    rollout_percentage: Decimal | None
    variant: str | None
    run_at: datetime
    status: ScheduleStatus
    note: str
    outcome: str
    applied_at: datetime | None
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime


class ScheduleCreate(msgspec.Struct, forbid_unknown_fields=True):
    """`set_rollout` takes `rollout_percentage`, `set_default_variant` takes `variant`;
    `enable` and `disable` take neither."""

    action: ScheduleAction
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


class StaleFlag(msgspec.Struct):
    key: str
    name: str
    reasons: list[str]
    """`not_evaluated` and/or `rollout_settled`."""
    last_evaluated_at: datetime | None
    rollout_percentage: Decimal
    rollout_changed_at: datetime
    created_at: datetime


def given_fields(data: msgspec.Struct, *skip: str) -> dict[str, Any]:
    """The fields a body gave, as plain values (UNSET ones left out; enums as their text)."""
    return {
        name: msgspec.to_builtins(value) if isinstance(value, FlagType | ScheduleAction) else value
        for name in data.__struct_fields__
        if name not in skip and (value := getattr(data, name)) is not msgspec.UNSET
    }


# ---- promotion between environments (docs/flags-export.schema.json) ------------------------


class PromotedRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """A rule, found again by its name (unique per flag); its segment by key."""

    name: str
    position: int
    conditions: list[Any]
    segment: str | None
    variant: str | None
    split: dict[str, Any] | None


class PromotedSchedule(msgspec.Struct, forbid_unknown_fields=True):
    """A pending scheduled change, the same in another database when every field matches."""

    action: ScheduleAction
    run_at: datetime
    rollout_percentage: str | None
    variant: str | None
    note: str


class PromotedNodeOverride(msgspec.Struct, forbid_unknown_fields=True):
    """An override of a node named by its path of slugs from the root."""

    node: str
    variant: str
    reason: str
    expires_at: datetime | None


class PromotedFlag(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    name: str
    description: str
    type: FlagType
    variants: dict[str, Any]
    default_variant: str
    off_variant: str
    enabled: bool
    rollout_percentage: str
    rollout_split: dict[str, Any] | None
    rules: list[PromotedRule]
    schedules: list[PromotedSchedule]
    node_overrides: list[PromotedNodeOverride] | msgspec.UnsetType = msgspec.UNSET


class PromotedSegment(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    name: str
    description: str
    conditions: list[Any]


class FlagsDocument(msgspec.Struct, forbid_unknown_fields=True):
    """What `GET /api/v1/admin/flags/export` answers and the import takes."""

    format: int
    flags: list[PromotedFlag]
    segments: list[PromotedSegment]


class FieldChange(msgspec.Struct):
    before: Any
    after: Any


class ItemChange(msgspec.Struct):
    """One item the import creates or changes: `kind` flag, rule, segment, schedule or
    node_override; `flag` names the flag it belongs to (None for a segment)."""

    kind: str
    key: str
    flag: str | None
    action: str
    """`created`, `changed` or `archived`."""
    fields: dict[str, FieldChange]


class LeftAlone(msgspec.Struct):
    kind: str
    key: str
    flag: str | None
    reason: str
    """`unchanged`, or `not_in_document` (kept: an import never deletes)."""


class ImportResult(msgspec.Struct):
    dry_run: bool
    applied: bool
    document_sha256: str
    changes: list[ItemChange]
    left_alone: list[LeftAlone]
