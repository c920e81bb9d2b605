"""Loads what the permission rule needs in one indexed query, whatever the tree's size.

The node's `path` column holds its ancestors, so assignments and overrides on the path are
two index lookups on (user_id, node_id) inside the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.auth.identity import Caller
from api.db import fetch
from api.errors import Forbidden, NotFound
from api.hierarchy.permissions import (
    Decision,
    HeldRole,
    PermissionOverride,
    decide,
    effective_permissions,
)
from tables.enums import Permission, Role

ACCESS_QUERY = """
WITH node AS (SELECT path FROM organization_hierarchy WHERE id = $2)
SELECT node.path, 'role' AS kind, a.node_id, a.role AS value, NULL::boolean AS granted
  FROM node JOIN user_hierarchy_assignments a
    ON a.user_id = $1 AND a.is_active AND a.node_id = ANY(node.path)
UNION ALL
SELECT node.path, 'override', o.node_id, o.permission, o.granted
  FROM node JOIN hierarchy_permission_overrides o
    ON o.user_id = $1 AND o.node_id = ANY(node.path)
   AND (o.expires_at IS NULL OR o.expires_at > now())
UNION ALL
SELECT node.path, 'node', NULL, NULL, NULL FROM node
"""


@dataclass(frozen=True, slots=True)
class AccessFacts:
    path: tuple[int, ...]
    roles: tuple[HeldRole, ...]
    overrides: tuple[PermissionOverride, ...]


async def load_access(user_id: int, node_id: int) -> AccessFacts | None:
    """Everything the rule needs about (user, node); None when the node does not exist."""
    rows = await fetch(ACCESS_QUERY, user_id, node_id)
    if not rows:
        return None
    roles = tuple(HeldRole(r["node_id"], Role(r["value"])) for r in rows if r["kind"] == "role")
    overrides = tuple(
        PermissionOverride(r["node_id"], Permission(r["value"]), r["granted"])
        for r in rows
        if r["kind"] == "override"
    )
    return AccessFacts(tuple(rows[0]["path"]), roles, overrides)


async def decisions_at(caller: Caller, node_id: int) -> dict[Permission, Decision] | None:
    facts = await load_access(caller.user_id, node_id)
    if facts is None:
        return None
    return effective_permissions(
        facts.path, facts.roles, facts.overrides, is_super_admin=caller.is_super_admin
    )


async def check_permission(
    user_id: int, node_id: int, permission: Permission, *, is_super_admin: bool
) -> Decision | None:
    """The single permission check the guards, the API and /me all use."""
    facts = await load_access(user_id, node_id)
    if facts is None:
        return None
    return decide(
        permission, facts.path, facts.roles, facts.overrides, is_super_admin=is_super_admin
    )


async def require_permission(caller: Caller, node_id: int, permission: Permission) -> None:
    """404 when the node is unknown or outside the caller's reach (no existence leak), 403
    when the caller may see it but lacks `permission` there."""
    decisions = await decisions_at(caller, node_id)
    if decisions is None or not decisions[Permission.read].granted:
        raise NotFound("No such node", extra={"node_id": node_id})
    if not decisions[permission].granted:
        raise Forbidden(
            f"The `{permission.value}` permission is needed at this node",
            extra={"permission": permission.value, "node_id": node_id},
        )


async def can_read_node(caller: Caller, node_id: int) -> bool:
    decision = await check_permission(
        caller.user_id, node_id, Permission.read, is_super_admin=caller.is_super_admin
    )
    return decision is not None and decision.granted
