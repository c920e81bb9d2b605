"""What the feature-flag admin modules share: a flag as the API answers it, and how one
is loaded (and locked) by its key; rows below a flag are only ever found through it."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from api.platform.http.errors import NotFound
from tables.flags import (
    FeatureFlag,
)

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


def read_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its JSON columns read: `returning` gives them as text, selects with
    `load_json` as values."""
    return {
        name: json.loads(value) if name in JSON_COLUMNS and isinstance(value, str) else value
        for name, value in row.items()
    }


def as_flag(row: dict[str, Any]) -> Flag:
    return msgspec.convert(read_json(row), Flag)


async def load_flag(key: str, *, lock: bool = False) -> Flag:
    query = FeatureFlag.select(*FLAG_COLUMNS).where(FeatureFlag.key == key).output(load_json=True)
    rows = await (query.lock_rows() if lock else query)
    if not rows:
        raise NotFound(f"No flag named {key!r}", extra={"key": key})
    return as_flag(rows[0])


def given_fields(data: msgspec.Struct, *skip: str) -> dict[str, Any]:
    """The fields a body gave, as plain values (UNSET ones left out)."""
    return {
        name: getattr(data, name)
        for name in data.__struct_fields__
        if name not in skip and getattr(data, name) is not msgspec.UNSET
    }
