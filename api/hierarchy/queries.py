"""Every read and lock of the hierarchy and users domain: builder calls, and named SQL where
the builder cannot say it (array overlap, correlated EXISTS, advisory locks, unions).

Column lists come from the response Structs, so a field added to a Struct is read too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from piccolo.columns import Column
from piccolo.table import Table

from api.hierarchy.schemas import (
    Assignment,
    Node,
    PermissionOverrideRow,
    UserRecord,
    UserStatus,
    VisibleUser,
)
from api.platform.db.sql import fetch
from api.platform.http.errors import NotFound
from tables.hierarchy import HierarchyNode, HierarchyPermissionOverride, UserHierarchyAssignment
from tables.users import User


def columns_of(table: type[Table], struct: type[msgspec.Struct]) -> tuple[Column, ...]:
    """The table's columns that `struct` answers with, in the Struct's order."""
    return tuple(table._meta.get_column_by_name(name) for name in struct.__struct_fields__)


NODE_COLUMNS = columns_of(HierarchyNode, Node)
ASSIGNMENT_COLUMNS = columns_of(UserHierarchyAssignment, Assignment)
OVERRIDE_COLUMNS = columns_of(HierarchyPermissionOverride, PermissionOverrideRow)
USER_STATUS_COLUMNS = columns_of(User, UserStatus)
USER_RECORD_COLUMNS = columns_of(User, UserRecord)

LOCK_ORGANIZATION_DOMAINS = "SELECT pg_advisory_xact_lock(hashtext('organization-domains'))"
"""Serialises domain claims (the database's `organization_domains_unique` trigger takes the
same lock), so two organizations never claim one domain concurrently."""
LOCK_ORGANIZATION = "SELECT pg_advisory_xact_lock($1::bigint)"
"""Serialises moves touching one organization (keyed by its root node id)."""
DOMAINS_TAKEN = (
    "SELECT id FROM organization_hierarchy WHERE level = 'organization'"
    " AND email_domains && $1::varchar[] AND ($2::int IS NULL OR id <> $2)"
)
"""Array overlap (`&&`), which Piccolo's query builder cannot say."""

ACCESS_QUERY = """
WITH node AS (SELECT path FROM organization_hierarchy WHERE id = $2)
SELECT node.path, 'role' AS kind, a.node_id, a.role AS value, NULL::boolean AS granted,
       NULL::int AS override_id, NULL::timestamptz AS expires_at
  FROM node JOIN user_hierarchy_assignments a
    ON a.user_id = $1 AND a.is_active AND a.node_id = ANY(node.path)
UNION ALL
SELECT node.path, 'override', o.node_id, o.permission, o.granted, o.id, o.expires_at
  FROM node JOIN hierarchy_permission_overrides o
    ON o.user_id = $1 AND o.node_id = ANY(node.path)
   AND (o.expires_at IS NULL OR o.expires_at > now())
UNION ALL
SELECT node.path, 'node', NULL, NULL, NULL, NULL, NULL FROM node
"""
"""Everything the permission rule needs about (user, node): two index lookups on the path."""

MEMBER_QUERY = """
SELECT 1 FROM user_hierarchy_assignments a
  JOIN organization_hierarchy n ON n.id = a.node_id
 WHERE a.user_id = $1 AND a.is_active
   AND n.path[1] = (SELECT path[1] FROM organization_hierarchy WHERE id = $2)
 LIMIT 1
"""

MEMBER_ORGANIZATIONS = (
    "SELECT o.id FROM organization_hierarchy o WHERE o.parent_id IS NULL"
    " AND ($2 OR EXISTS (SELECT 1 FROM user_hierarchy_assignments a"
    " JOIN organization_hierarchy n ON n.id = a.node_id"
    " WHERE a.user_id = $1 AND a.is_active AND n.path[1] = o.id))"
)
"""Ids of the organizations the caller belongs to (all for super-admins): a correlated
EXISTS on path[1], which the query builder cannot say."""

VISIBLE_USERS = """
SELECT DISTINCT u.id, u.email, u.name, u.is_active, u.is_super_admin
FROM users u
WHERE $2 OR u.id = $1 OR EXISTS (
  SELECT 1 FROM user_hierarchy_assignments theirs
  JOIN organization_hierarchy n ON n.id = theirs.node_id
  JOIN user_hierarchy_assignments mine ON mine.user_id = $1 AND mine.is_active
   AND mine.node_id = ANY(n.path)
  WHERE theirs.user_id = u.id)
ORDER BY u.id LIMIT $3 OFFSET $4
"""

MY_ASSIGNMENTS = (
    "SELECT a.id, a.node_id, a.role, a.is_primary, n.name, n.level, n.path,"
    " ARRAY(SELECT p.name FROM unnest(n.path) WITH ORDINALITY AS u(id, depth)"
    " JOIN organization_hierarchy p ON p.id = u.id ORDER BY u.depth) AS path_names,"
    " root.id AS org_id, root.name AS org_name, root.slug AS org_slug"
    " FROM user_hierarchy_assignments a JOIN organization_hierarchy n ON n.id = a.node_id"
    " JOIN organization_hierarchy root ON root.id = n.path[1]"
    " WHERE a.user_id = $1 AND a.is_active ORDER BY root.name, n.path"
)
"""A person's active assignments with the names along each path and its organization."""

SECONDS_TO_NEXT_EXPIRY = (
    "SELECT EXTRACT(EPOCH FROM min(expires_at) - now()) AS left"
    " FROM hierarchy_permission_overrides WHERE user_id = $1 AND expires_at > now()"
)


# ---- nodes ----------------------------------------------------------------------------------


def as_node(row: dict[str, Any]) -> Node:
    """A node row (from select or returning; JSON may come back as text) as a `Node`."""
    if isinstance(row.get("settings"), str):
        row = {**row, "settings": json.loads(row["settings"])}
    return msgspec.convert(row, Node)


async def load_node(node_id: int, *, lock: bool = False) -> Node:
    query = HierarchyNode.select(*NODE_COLUMNS).where(HierarchyNode.id == node_id)
    rows = await (query.lock_rows() if lock else query)
    if not rows:
        raise NotFound("No such node", extra={"node_id": node_id})
    return as_node(rows[0])


async def children(node_id: int) -> list[Node]:
    rows = (
        await HierarchyNode.select(*NODE_COLUMNS)
        .where(HierarchyNode.parent_id == node_id)
        .order_by(HierarchyNode.name)
    )
    return [as_node(row) for row in rows]


async def member_organizations(user_id: int, is_super_admin: bool) -> list[Node]:
    ids = [row["id"] for row in await fetch(MEMBER_ORGANIZATIONS, user_id, is_super_admin)]
    if not ids:
        return []
    rows = (
        await HierarchyNode.select(*NODE_COLUMNS)
        .where(HierarchyNode.id.is_in(ids))
        .order_by(HierarchyNode.name)
    )
    return [as_node(row) for row in rows]


async def lock_domain_claims() -> None:
    await fetch(LOCK_ORGANIZATION_DOMAINS)


async def domains_taken(domains: list[str], except_org: int | None) -> bool:
    return bool(await fetch(DOMAINS_TAKEN, domains, except_org))


async def lock_organization(root_id: int) -> None:
    await fetch(LOCK_ORGANIZATION, root_id)


# ---- access ---------------------------------------------------------------------------------


async def access_rows(user_id: int, node_id: int) -> list[dict[str, Any]]:
    return [dict(row) for row in await fetch(ACCESS_QUERY, user_id, node_id)]


async def is_member_of_organization(user_id: int, node_id: int) -> bool:
    return bool(await fetch(MEMBER_QUERY, user_id, node_id))


async def active_super_admin(user_id: int) -> bool | None:
    """None when the user does not exist."""
    row = await (
        User.select(User.is_super_admin, User.is_active).where(User.id == user_id).first().run()
    )
    if row is None:
        return None
    return bool(row["is_super_admin"] and row["is_active"])


# ---- assignments and overrides --------------------------------------------------------------


async def assignment(assignment_id: int, *, lock: bool = False) -> Assignment | None:
    query = UserHierarchyAssignment.select(*ASSIGNMENT_COLUMNS).where(
        UserHierarchyAssignment.id == assignment_id
    )
    rows = await (query.lock_rows() if lock else query)
    return msgspec.convert(rows[0], Assignment) if rows else None


async def assignments_at(node_id: int) -> list[Assignment]:
    rows = (
        await UserHierarchyAssignment.select(*ASSIGNMENT_COLUMNS)
        .where(UserHierarchyAssignment.node_id == node_id)
        .order_by(UserHierarchyAssignment.id)
    )
    return [msgspec.convert(row, Assignment) for row in rows]


async def other_primaries(user_id: int, keep: int | None) -> list[Assignment]:
    """The person's primary assignments other than `keep`, locked."""
    query = UserHierarchyAssignment.select(*ASSIGNMENT_COLUMNS).where(
        (UserHierarchyAssignment.user_id == user_id) & (UserHierarchyAssignment.is_primary == True)  # noqa: E712
    )
    if keep is not None:
        query = query.where(UserHierarchyAssignment.id != keep)
    return [msgspec.convert(row, Assignment) for row in await query.lock_rows()]


async def override(override_id: int, *, lock: bool = False) -> PermissionOverrideRow | None:
    query = HierarchyPermissionOverride.select(*OVERRIDE_COLUMNS).where(
        HierarchyPermissionOverride.id == override_id
    )
    rows = await (query.lock_rows() if lock else query)
    return msgspec.convert(rows[0], PermissionOverrideRow) if rows else None


async def overrides_at(node_id: int) -> list[PermissionOverrideRow]:
    rows = (
        await HierarchyPermissionOverride.select(*OVERRIDE_COLUMNS)
        .where(HierarchyPermissionOverride.node_id == node_id)
        .order_by(HierarchyPermissionOverride.id)
    )
    return [msgspec.convert(row, PermissionOverrideRow) for row in rows]


# ---- users ----------------------------------------------------------------------------------


async def user_record(user_id: int, *, lock: bool = False) -> UserRecord | None:
    query = User.select(*USER_RECORD_COLUMNS).where(User.id == user_id)
    rows = await (query.lock_rows() if lock else query)
    return msgspec.convert(rows[0], UserRecord) if rows else None


async def visible_users(
    user_id: int, is_super_admin: bool, limit: int, offset: int
) -> list[VisibleUser]:
    rows = await fetch(VISIBLE_USERS, user_id, is_super_admin, limit, offset)
    return [VisibleUser(**dict(row)) for row in rows]


async def user_standing(user_id: int) -> dict[str, Any] | None:
    return await (
        User.select(User.email, User.is_super_admin, User.is_active)
        .where(User.id == user_id)
        .first()
    )


async def active_user_profile(user_id: int) -> dict[str, Any] | None:
    return await (
        User.select(
            User.id,
            User.email,
            User.name,
            User.given_name,
            User.family_name,
            User.is_super_admin,
            User.last_login_at,
        )
        .where((User.id == user_id) & (User.is_active == True))  # noqa: E712
        .first()
    )


async def my_assignments(user_id: int) -> list[dict[str, Any]]:
    return [dict(row) for row in await fetch(MY_ASSIGNMENTS, user_id)]


async def my_live_overrides(user_id: int) -> list[dict[str, Any]]:
    rows = await HierarchyPermissionOverride.select(
        HierarchyPermissionOverride.node_id,
        HierarchyPermissionOverride.permission,
        HierarchyPermissionOverride.granted,
        HierarchyPermissionOverride.expires_at,
    ).where(HierarchyPermissionOverride.user_id == user_id)
    now = datetime.now(UTC)
    return [row for row in rows if row["expires_at"] is None or row["expires_at"] > now]


async def seconds_to_next_expiry(user_id: int) -> float | None:
    rows = await fetch(SECONDS_TO_NEXT_EXPIRY, user_id)
    left = rows[0]["left"] if rows else None
    return float(left) if left is not None else None
