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
