"""Writes to the organisation tree, assignments and overrides — each checked and audited.

Rules (PRODUCT §3.1): creating, renaming, moving or deactivating nodes needs
`manage_settings`; assigning roles and setting permission overrides needs `manage_users`;
nobody grants a role or permission they do not hold at that node; only super-admins create
organizations, claim e-mail domains, move nodes between tenants or grant super-admin.
Moves lock the affected organizations, so concurrent moves cannot lose an update.

Requests arrive as msgspec Structs (types already checked); results are Structs too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from litestar.connection import ASGIConnection

from api.auth.identity import Caller
from api.auth.sessions import end_user_sessions
from api.hierarchy.access import (
    decisions_at,
    may_manage_users_at,
    require_no_more_authority,
    require_permission,
    require_user_within_reach,
)
from api.hierarchy.permissions import ROLE_PERMISSIONS
from api.hierarchy.rules import (
    invalid,
    validate_domains,
    validate_expiry,
    validate_grant_reason,
    validate_name,
    validate_slug,
)
from api.hierarchy.schemas import (
    Assignment,
    AssignmentCreate,
    AssignmentUpdate,
    Node,
    NodeCreate,
    NodeUpdate,
    OrganizationCreate,
    OverrideCreate,
    PermissionOverrideRow,
    UserFlags,
    UserUpdate,
)
from api.platform.db.audit import audited_change, record_audit
from api.platform.db.sql import fetch
from api.platform.http.errors import Conflict, Forbidden, NotFound
from tables.enums import NodeLevel, Permission, Role
from tables.hierarchy import HierarchyNode, HierarchyPermissionOverride, UserHierarchyAssignment
from tables.users import User

CHILD_LEVEL = {NodeLevel.organization: NodeLevel.location, NodeLevel.location: NodeLevel.department}
MAX_SETTINGS_BYTES = 16 * 1024
MAX_SETTINGS_DEPTH = 20

LOCK_ORGANIZATION_DOMAINS = "SELECT pg_advisory_xact_lock(hashtext('organization-domains'))"
"""Serialises domain claims, so two organizations never claim one domain concurrently."""
LOCK_ORGANIZATION = "SELECT pg_advisory_xact_lock($1::bigint)"
"""Serialises moves touching one organization (keyed by its root node id)."""
DOMAINS_TAKEN = (
    "SELECT id FROM organization_hierarchy WHERE level = 'organization'"
    " AND email_domains && $1::varchar[] AND ($2::int IS NULL OR id <> $2)"
)
"""Array overlap (`&&`), which Piccolo's query builder cannot say."""

NODE_COLUMNS = (
    HierarchyNode.id,
    HierarchyNode.parent_id,
    HierarchyNode.level,
    HierarchyNode.name,
    HierarchyNode.slug,
    HierarchyNode.path,
    HierarchyNode.is_active,
    HierarchyNode.settings,
    HierarchyNode.email_domains,
)
ASSIGNMENT_COLUMNS = (
    UserHierarchyAssignment.id,
    UserHierarchyAssignment.user_id,
    UserHierarchyAssignment.node_id,
    UserHierarchyAssignment.role,
    UserHierarchyAssignment.is_primary,
    UserHierarchyAssignment.is_active,
    UserHierarchyAssignment.granted_by_id,
    UserHierarchyAssignment.created_at,
)
OVERRIDE_COLUMNS = (
    HierarchyPermissionOverride.id,
    HierarchyPermissionOverride.user_id,
    HierarchyPermissionOverride.node_id,
    HierarchyPermissionOverride.permission,
    HierarchyPermissionOverride.granted,
    HierarchyPermissionOverride.reason,
    HierarchyPermissionOverride.granted_by_id,
    HierarchyPermissionOverride.expires_at,
    HierarchyPermissionOverride.created_at,
)
USER_FLAG_COLUMNS = (User.id, User.email, User.is_active, User.is_super_admin)

Connection = ASGIConnection[Any, Any, Any, Any]


def _depth(value: Any) -> int:
    """Nesting depth of JSON containers, walked without recursion (any depth is safe)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_SETTINGS_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def clean_settings(settings: dict[str, Any] | None) -> str | None:
    """Settings as the JSON text to store: an object of at most 16 KiB and 20 levels, since
    every change is copied into the append-only audit log forever."""
    if settings is None:
        return None
    if _depth(settings) > MAX_SETTINGS_DEPTH:
        raise invalid("settings", f"settings may nest at most {MAX_SETTINGS_DEPTH} levels deep")
    encoded = json.dumps(settings, ensure_ascii=False, separators=(",", ":"))
    if len(encoded.encode()) > MAX_SETTINGS_BYTES:
        raise invalid("settings", f"settings may take at most {MAX_SETTINGS_BYTES} bytes as JSON")
    if "\\u0000" in encoded:  # Postgres jsonb cannot hold it
        raise invalid("settings", "settings may not contain NUL characters")
    return encoded


def as_node(row: dict[str, Any]) -> Node:
    """A node row (from select or returning; JSON may come back as text) as a `Node`."""
    if isinstance(row.get("settings"), str):
        row = {**row, "settings": json.loads(row["settings"])}
    return msgspec.convert(row, Node)


async def load_node(node_id: int) -> Node:
    row = await HierarchyNode.select(*NODE_COLUMNS).where(HierarchyNode.id == node_id).first()
    if row is None:
        raise NotFound("No such node", extra={"node_id": node_id})
    return as_node(row)


async def _claim_domains(domains: list[str], except_org: int | None) -> None:
    """Inside a transaction: take the domain lock, then refuse domains another org holds."""
    if not domains:
        return
    await fetch(LOCK_ORGANIZATION_DOMAINS)
    if await fetch(DOMAINS_TAKEN, domains, except_org):
        raise Conflict(
            "An e-mail domain is claimed by another organization", extra={"field": "email_domains"}
        )


class _NewNode(msgspec.Struct):
    name: str
    slug: str
    settings: str | None


def _new_node(data: NodeCreate) -> _NewNode:
    """The node's fields as stored, each checked (422 naming the field)."""
    return _NewNode(
        validate_name(data.name), validate_slug(data.slug), clean_settings(data.settings)
    )


async def _insert_node(
    level: NodeLevel, fields: _NewNode, parent: int | None, domains: list[str]
) -> Node:
    row = HierarchyNode(
        level=level.value,
        name=fields.name,
        slug=fields.slug,
        parent_id=parent,
        email_domains=domains,
        settings=fields.settings,
    )
    try:
        rows = await HierarchyNode.insert(row).returning(*NODE_COLUMNS)
    except asyncpg.UniqueViolationError:
        raise Conflict("A sibling already uses this slug", extra={"field": "slug"}) from None
    return as_node(rows[0])


async def create_organization(
    connection: Connection, caller: Caller, data: OrganizationCreate
) -> Node:
    if not caller.is_super_admin:
        raise Forbidden("Only super-admins create organizations")
    fields, domains = _new_node(data), validate_domains(data.email_domains)
    async with audited_change("node.created", "node", actor=caller, connection=connection) as c:
        await _claim_domains(domains, None)
        node = await _insert_node(NodeLevel.organization, fields, None, domains)
        c.resource_id, c.after = node.id, node
    return node


async def create_child(
    connection: Connection, caller: Caller, parent_id: int, data: NodeCreate
) -> Node:
    await require_permission(caller, parent_id, Permission.manage_settings)
    parent = await load_node(parent_id)
    level = CHILD_LEVEL.get(NodeLevel(parent.level))
    if level is None:
        raise invalid("parent_id", "departments are leaves: they cannot have children")
    if not parent.is_active:
        raise invalid("parent_id", "the parent node is deactivated")
    fields = _new_node(data)
    async with audited_change("node.created", "node", actor=caller, connection=connection) as c:
        node = await _insert_node(level, fields, parent_id, [])
        c.resource_id, c.after = node.id, node
    return node


async def update_node(
    connection: Connection, caller: Caller, node_id: int, data: NodeUpdate
) -> Node:
    await require_permission(caller, node_id, Permission.manage_settings)
    changes: dict[Any, Any] = {}
    if data.name is not msgspec.UNSET:
        changes[HierarchyNode.name] = validate_name(data.name)
    if data.slug is not msgspec.UNSET:
        changes[HierarchyNode.slug] = validate_slug(data.slug)
    if data.settings is not msgspec.UNSET:
        changes[HierarchyNode.settings] = clean_settings(data.settings)
    if data.is_active is not msgspec.UNSET:
        changes[HierarchyNode.is_active] = data.is_active
    async with audited_change(
        "node.updated", "node", actor=caller, connection=connection, resource_id=node_id
    ) as change:
        before = change.before = await load_node(node_id)
        if data.email_domains is not msgspec.UNSET:
            if not caller.is_super_admin:
                raise Forbidden("Only super-admins change claimed e-mail domains")
            if before.level != NodeLevel.organization:
                raise invalid("email_domains", "only organizations claim e-mail domains")
            domains = validate_domains(data.email_domains)
            await _claim_domains(domains, node_id)
            changes[HierarchyNode.email_domains] = domains
        if not changes:
            change.skip = True
            return before
        changes[HierarchyNode.updated_at] = _now()
        try:
            rows = await (
                HierarchyNode.update(changes)
                .where(HierarchyNode.id == node_id)
                .returning(*NODE_COLUMNS)
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("A sibling already uses this slug", extra={"field": "slug"}) from None
        change.after = after = as_node(rows[0])
    return after


async def move_node(
    connection: Connection, caller: Caller, node_id: int, new_parent_id: int
) -> Node:
    await require_permission(caller, node_id, Permission.manage_settings)
    await require_permission(caller, new_parent_id, Permission.manage_settings)
    async with audited_change(
        "node.moved", "node", actor=caller, connection=connection, resource_id=node_id
    ) as change:
        before = await load_node(node_id)
        target = await load_node(new_parent_id)
        roots = sorted({before.path[0], target.path[0]})
        if len(roots) > 1 and not caller.is_super_admin:
            raise Forbidden("Only super-admins move nodes between organizations")
        for root in roots:  # a fixed order: two moves never deadlock
            await fetch(LOCK_ORGANIZATION, root)
        before = change.before = await load_node(node_id)  # re-read under the lock
        target = await load_node(new_parent_id)
        if node_id in target.path:
            raise invalid("parent_id", "a node cannot move under itself or its descendants")
        if CHILD_LEVEL.get(NodeLevel(target.level)) != NodeLevel(before.level):
            raise invalid("parent_id", f"a {before.level} cannot sit under a {target.level}")
        try:
            rows = await (
                HierarchyNode.update(
                    {HierarchyNode.parent_id: new_parent_id, HierarchyNode.updated_at: _now()}
                )
                .where(HierarchyNode.id == node_id)
                .returning(*NODE_COLUMNS)
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "The new parent already has a child with this slug", extra={"field": "slug"}
            ) from None
        except asyncpg.CheckViolationError:
            raise invalid("parent_id", "this move would break the tree") from None
        change.after = after = as_node(rows[0])
    return after


def _now() -> datetime:
    return datetime.now(UTC)


async def _grantable(
    caller: Caller, node_id: int, needed: frozenset[Permission], what: str
) -> None:
    """The caller must manage users here and hold every permission they hand out."""
    await require_permission(caller, node_id, Permission.manage_users)
    decisions = await decisions_at(caller, node_id)
    assert decisions is not None
    missing = sorted(p.value for p in needed if not decisions[p].granted)
    if missing:
        raise Forbidden(
            f"You cannot grant {what}: you lack {', '.join(missing)} here",
            extra={"missing": missing},
        )


def clean_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise invalid("role", f"role must be one of {', '.join(r.value for r in Role)}") from None


async def _target_user(caller: Caller, user_id: int, node_id: int) -> int:
    """The person a write names: within the caller's reach (else 404 like an unknown id) and
    with no more authority at the node than the caller (else 403)."""
    if user_id < 1:
        raise invalid("user_id", "user_id must be a user id")
    await require_user_within_reach(caller, user_id, node_id, extra={"field": "user_id"})
    await require_no_more_authority(caller, user_id, node_id)
    return user_id


async def _clear_other_primaries(
    connection: Connection, caller: Caller, user_id: int, keep: int | None
) -> None:
    """Moving `is_primary` touches the user's other rows: only where the caller manages users,
    each change audited. Call inside the write's transaction."""
    query = UserHierarchyAssignment.select(*ASSIGNMENT_COLUMNS).where(
        (UserHierarchyAssignment.user_id == user_id) & (UserHierarchyAssignment.is_primary == True)  # noqa: E712
    )
    if keep is not None:
        query = query.where(UserHierarchyAssignment.id != keep)
    others = [msgspec.convert(row, Assignment) for row in await query.lock_rows()]
    for other in others:
        if not await may_manage_users_at(caller, other.node_id):
            raise Forbidden(
                "This person's primary assignment is at a node you do not manage",
                extra={"field": "is_primary"},
            )
    for other in others:
        rows = await (
            UserHierarchyAssignment.update(
                {
                    UserHierarchyAssignment.is_primary: False,
                    UserHierarchyAssignment.updated_at: _now(),
                }
            )
            .where(UserHierarchyAssignment.id == other.id)
            .returning(*ASSIGNMENT_COLUMNS)
        )
        await record_audit(
            action="assignment.updated",
            resource_type="assignment",
            resource_id=other.id,
            actor=caller,
            before=other,
            after=msgspec.convert(rows[0], Assignment),
            connection=connection,
        )


async def assign_role(
    connection: Connection, caller: Caller, node_id: int, data: AssignmentCreate
) -> Assignment:
    role = clean_role(data.role)
    await _grantable(caller, node_id, ROLE_PERMISSIONS[role], f"the {role.value} role")
    user_id = await _target_user(caller, data.user_id, node_id)
    async with audited_change(
        "assignment.created", "assignment", actor=caller, connection=connection
    ) as change:
        if data.is_primary:
            await _clear_other_primaries(connection, caller, user_id, None)
        row = UserHierarchyAssignment(
            user_id=user_id,
            node_id=node_id,
            role=role.value,
            is_primary=data.is_primary,
            granted_by_id=caller.user_id,
        )
        try:
            rows = await UserHierarchyAssignment.insert(row).returning(*ASSIGNMENT_COLUMNS)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "The user already has a role at this node", extra={"field": "user_id"}
            ) from None
        after = change.after = msgspec.convert(rows[0], Assignment)
        change.resource_id = after.id
    return after


async def _reachable_assignment(caller: Caller, assignment_id: int) -> Assignment:
    row = (
        await UserHierarchyAssignment.select(*ASSIGNMENT_COLUMNS)
        .where(UserHierarchyAssignment.id == assignment_id)
        .first()
    )
    decisions = await decisions_at(caller, row["node_id"]) if row else None
    if row is None or decisions is None or not decisions[Permission.read].granted:
        raise NotFound("No such assignment", extra={"assignment_id": assignment_id})
    return msgspec.convert(row, Assignment)


async def update_assignment(
    connection: Connection, caller: Caller, assignment_id: int, data: AssignmentUpdate
) -> Assignment:
    before = await _reachable_assignment(caller, assignment_id)
    role = clean_role(before.role if data.role is msgspec.UNSET else data.role)
    needed = ROLE_PERMISSIONS[role] | ROLE_PERMISSIONS[Role(before.role)]
    await _grantable(caller, before.node_id, needed, f"the {role.value} role")
    await require_no_more_authority(caller, before.user_id, before.node_id)
    changes: dict[Any, Any] = {
        UserHierarchyAssignment.role: role.value,
        UserHierarchyAssignment.updated_at: _now(),
    }
    if data.is_primary is not msgspec.UNSET:
        changes[UserHierarchyAssignment.is_primary] = data.is_primary
    if data.is_active is not msgspec.UNSET:
        changes[UserHierarchyAssignment.is_active] = data.is_active
    async with audited_change(
        "assignment.updated",
        "assignment",
        actor=caller,
        connection=connection,
        resource_id=assignment_id,
        before=before,
    ) as change:
        if data.is_primary is True:
            await _clear_other_primaries(connection, caller, before.user_id, assignment_id)
        rows = await (
            UserHierarchyAssignment.update(changes)
            .where(UserHierarchyAssignment.id == assignment_id)
            .returning(*ASSIGNMENT_COLUMNS)
        )
        after = change.after = msgspec.convert(rows[0], Assignment)
    return after


async def remove_assignment(connection: Connection, caller: Caller, assignment_id: int) -> None:
    before = await _reachable_assignment(caller, assignment_id)
    await _grantable(
        caller, before.node_id, ROLE_PERMISSIONS[Role(before.role)], f"the {before.role} role"
    )
    await require_no_more_authority(caller, before.user_id, before.node_id)
    async with audited_change(
        "assignment.deleted",
        "assignment",
        actor=caller,
        connection=connection,
        resource_id=assignment_id,
        before=before,
    ):
        await UserHierarchyAssignment.delete().where(UserHierarchyAssignment.id == assignment_id)


async def set_override(
    connection: Connection, caller: Caller, node_id: int, data: OverrideCreate
) -> PermissionOverrideRow:
    try:
        permission = Permission(data.permission)
    except ValueError:
        raise invalid(
            "permission", f"permission must be one of {', '.join(p.value for p in Permission)}"
        ) from None
    await _grantable(caller, node_id, frozenset({permission}), f"`{permission.value}`")
    user_id = await _target_user(caller, data.user_id, node_id)
    reason = validate_grant_reason(data.reason)
    validate_expiry(data.expires_at, _now())
    async with audited_change(
        "permission_override.created", "permission_override", actor=caller, connection=connection
    ) as change:
        row = HierarchyPermissionOverride(
            user_id=user_id,
            node_id=node_id,
            permission=permission.value,
            granted=data.granted,
            reason=reason,
            granted_by_id=caller.user_id,
            expires_at=data.expires_at,
        )
        try:
            rows = await HierarchyPermissionOverride.insert(row).returning(*OVERRIDE_COLUMNS)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "An override for this user and permission exists here",
                extra={"field": "permission"},
            ) from None
        after = change.after = msgspec.convert(rows[0], PermissionOverrideRow)
        change.resource_id = after.id
    return after


async def remove_override(connection: Connection, caller: Caller, override_id: int) -> None:
    row = (
        await HierarchyPermissionOverride.select(*OVERRIDE_COLUMNS)
        .where(HierarchyPermissionOverride.id == override_id)
        .first()
    )
    decisions = await decisions_at(caller, row["node_id"]) if row else None
    if row is None or decisions is None or not decisions[Permission.read].granted:
        raise NotFound("No such override", extra={"override_id": override_id})
    before = msgspec.convert(row, PermissionOverrideRow)
    await _grantable(
        caller, before.node_id, frozenset({Permission(before.permission)}), f"`{before.permission}`"
    )
    await require_no_more_authority(caller, before.user_id, before.node_id)
    async with audited_change(
        "permission_override.deleted",
        "permission_override",
        actor=caller,
        connection=connection,
        resource_id=override_id,
        before=before,
    ):
        await HierarchyPermissionOverride.delete().where(
            HierarchyPermissionOverride.id == override_id
        )


async def update_user_flags(
    connection: Connection, caller: Caller, user_id: int, data: UserUpdate
) -> UserFlags:
    """Deactivate/reactivate a user or grant/revoke super-admin: super-admins only."""
    if not caller.is_super_admin:
        raise Forbidden("Only super-admins change these")
    changes: dict[Any, Any] = {}
    if data.is_active is not msgspec.UNSET:
        changes[User.is_active] = data.is_active
    if data.is_super_admin is not msgspec.UNSET:
        changes[User.is_super_admin] = data.is_super_admin
    async with audited_change(
        "user.updated", "user", actor=caller, connection=connection, resource_id=user_id
    ) as change:
        row = await User.select(*USER_FLAG_COLUMNS).where(User.id == user_id).lock_rows()
        if not row:
            raise NotFound("No such user", extra={"user_id": user_id})
        before = change.before = msgspec.convert(row[0], UserFlags)
        if not changes:
            change.skip = True
            return before
        changes[User.updated_at] = _now()
        rows = await User.update(changes).where(User.id == user_id).returning(*USER_FLAG_COLUMNS)
        if data.is_active is False:
            await end_user_sessions(user_id)
        after = change.after = msgspec.convert(rows[0], UserFlags)
    return after
