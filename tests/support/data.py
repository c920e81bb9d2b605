"""Organizations, assignments and flags created directly, unique per test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from api.platform.db.sql import fetch


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Tree:
    """An organization with two locations, each with two departments."""

    org: int
    loc_a: int
    loc_b: int
    dept_a1: int
    dept_a2: int
    dept_b1: int
    dept_b2: int


async def node(level: str, parent: int | None, slug: str | None = None) -> int:
    rows = await fetch(
        "INSERT INTO organization_hierarchy (level, name, slug, parent_id) VALUES ($1, $2, $3, $4)"
        " RETURNING id",
        level,
        slug or unique(level),
        slug or unique(level[:3]),
        parent,
    )
    return int(rows[0]["id"])


async def make_tree() -> Tree:
    org = await node("organization", None)
    loc_a, loc_b = await node("location", org), await node("location", org)
    return Tree(
        org,
        loc_a,
        loc_b,
        await node("department", loc_a),
        await node("department", loc_a),
        await node("department", loc_b),
        await node("department", loc_b),
    )


async def assign(user_id: int, node_id: int, role: str, *, primary: bool = False) -> None:
    await fetch(
        "INSERT INTO user_hierarchy_assignments (user_id, node_id, role, is_primary)"
        " VALUES ($1, $2, $3, $4)",
        user_id,
        node_id,
        role,
        primary,
    )


async def make_flag(key: str | None = None, *, enabled: bool = True, rollout: str = "0") -> str:
    key = key or unique("flag")
    await fetch(
        "INSERT INTO feature_flags (key, name, enabled, rollout_percentage) VALUES ($1, $1, $2, $3)",
        key,
        enabled,
        Decimal(rollout),
    )
    return key


async def flag_override(
    key: str, *, enabled: bool, user_id: int | None = None, node_id: int | None = None
) -> None:
    await fetch(
        "INSERT INTO feature_flag_overrides (flag_id, user_id, node_id, variant)"
        " SELECT id, $2, $3, $4 FROM feature_flags WHERE key = $1",
        key,
        user_id,
        node_id,
        "on" if enabled else "off",
    )
