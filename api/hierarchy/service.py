"""Writes to the organisation tree, assignments and overrides — each checked and audited.

Rules (PRODUCT §3.1): creating, renaming, moving or deactivating nodes needs
`manage_settings`; assigning roles and setting permission overrides needs `manage_users`;
nobody grants a role or permission they do not hold at that node; only super-admins create
organizations, claim e-mail domains, move nodes between tenants or grant super-admin.
Moves lock the affected organizations, so concurrent moves cannot lose an update.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
from litestar.connection import ASGIConnection

from api.audit import record_audit
from api.auth.identity import Caller
from api.auth.sessions import end_user_sessions
from api.db import engine, fetch, set_clause
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.hierarchy.access import (
    decisions_at,
    may_manage_users_at,
    require_no_more_authority,
    require_permission,
    require_user_within_reach,
)
from api.hierarchy.permissions import ROLE_PERMISSIONS
from tables.enums import NodeLevel, Permission, Role

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
CHILD_LEVEL = {NodeLevel.organization: NodeLevel.location, NodeLevel.location: NodeLevel.department}
NODE_COLUMNS = "id, parent_id, level, name, slug, path, is_active, settings, email_domains"
MAX_SETTINGS_BYTES = 16 * 1024
MAX_SETTINGS_DEPTH = 20

Connection = ASGIConnection[Any, Any, Any, Any]


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, extra={"field": field})


def clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise _invalid("name", "name must be 1 to 200 characters")
    return name.strip()


def clean_slug(slug: Any) -> str:
    if not isinstance(slug, str) or len(slug) > 100 or not SLUG.match(slug):
        raise _invalid("slug", "slug must be lower-case letters, digits and single dashes")
    return slug


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


def clean_settings(settings: Any) -> str | None:
    """Settings as the JSON text to store: an object of at most 16 KiB and 20 levels, since
    every change is copied into the append-only audit log forever."""
    if settings is None:
        return None
    if not isinstance(settings, dict):
        raise _invalid("settings", "settings must be an object")
    if _depth(settings) > MAX_SETTINGS_DEPTH:
        raise _invalid("settings", f"settings may nest at most {MAX_SETTINGS_DEPTH} levels deep")
    encoded = json.dumps(settings, ensure_ascii=False, separators=(",", ":"))
    if len(encoded.encode()) > MAX_SETTINGS_BYTES:
        raise _invalid("settings", f"settings may take at most {MAX_SETTINGS_BYTES} bytes as JSON")
    if "\\u0000" in encoded:  # Postgres jsonb cannot hold it
        raise _invalid("settings", "settings may not contain NUL characters")
    return encoded


def clean_domains(domains: Any) -> list[str]:
    if not isinstance(domains, list) or len(domains) > 50:
        raise _invalid("email_domains", "email_domains must be a list of at most 50 domains")
    cleaned = []
    for domain in domains:
        if not isinstance(domain, str) or not DOMAIN.match(domain.lower()):
            raise _invalid("email_domains", f"{domain!r} is not a domain name")
        cleaned.append(domain.lower())
    return sorted(set(cleaned))


def node_json(row: Any) -> dict[str, Any]:
    node = dict(row)
    node["path"] = list(node["path"])
    node["email_domains"] = list(node["email_domains"])
    if isinstance(node.get("settings"), str):
        node["settings"] = json.loads(node["settings"])
    return node


async def load_node(node_id: int) -> dict[str, Any]:
    rows = await fetch(f"SELECT {NODE_COLUMNS} FROM organization_hierarchy WHERE id = $1", node_id)
    if not rows:
        raise NotFound("No such node", extra={"node_id": node_id})
    return node_json(rows[0])


async def _domains_free(domains: list[str], except_org: int | None) -> None:
    if not domains:
        return
    taken = await fetch(
        "SELECT id FROM organization_hierarchy WHERE level = 'organization'"
        " AND email_domains && $1::varchar[] AND ($2::int IS NULL OR id <> $2)",
        domains,
        except_org,
    )
    if taken:
        raise Conflict(
            "An e-mail domain is claimed by another organization", extra={"field": "email_domains"}
        )


async def _insert_node(
    level: NodeLevel,
    name: str,
    slug: str,
    parent: int | None,
    domains: list[str],
    settings: str | None,
) -> dict[str, Any]:
    try:
        rows = await fetch(
            "INSERT INTO organization_hierarchy (level, name, slug, parent_id, email_domains,"
            " settings)"
            f" VALUES ($1, $2, $3, $4, $5::varchar[], $6::jsonb) RETURNING {NODE_COLUMNS}",
            level.value,
            name,
            slug,
            parent,
            domains,
            settings,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict("A sibling already uses this slug", extra={"field": "slug"}) from None
    return node_json(rows[0])


async def create_organization(
    connection: Connection, caller: Caller, data: dict[str, Any]
) -> dict[str, Any]:
    if not caller.is_super_admin:
        raise Forbidden("Only super-admins create organizations")
    name, slug = clean_name(data.get("name")), clean_slug(data.get("slug"))
    domains = clean_domains(data.get("email_domains", []))
    settings = clean_settings(data.get("settings"))
    async with engine().transaction():
        await fetch("SELECT pg_advisory_xact_lock(hashtext('organization-domains'))")
        await _domains_free(domains, None)
        node = await _insert_node(NodeLevel.organization, name, slug, None, domains, settings)
        await record_audit(
            action="node.created",
            resource_type="node",
            resource_id=node["id"],
            actor=caller,
            after=node,
            connection=connection,
        )
    return node


async def create_child(
    connection: Connection, caller: Caller, parent_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    await require_permission(caller, parent_id, Permission.manage_settings)
    parent = await load_node(parent_id)
    level = CHILD_LEVEL.get(NodeLevel(parent["level"]))
    if level is None:
        raise _invalid("parent_id", "departments are leaves: they cannot have children")
    if not parent["is_active"]:
        raise _invalid("parent_id", "the parent node is deactivated")
    name, slug = clean_name(data.get("name")), clean_slug(data.get("slug"))
    settings = clean_settings(data.get("settings"))
    async with engine().transaction():
        node = await _insert_node(level, name, slug, parent_id, [], settings)
        await record_audit(
            action="node.created",
            resource_type="node",
            resource_id=node["id"],
            actor=caller,
            after=node,
            connection=connection,
        )
    return node


async def update_node(
    connection: Connection, caller: Caller, node_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    await require_permission(caller, node_id, Permission.manage_settings)
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = clean_name(data["name"])
    if "slug" in data:
        changes["slug"] = clean_slug(data["slug"])
    if "settings" in data:
        changes["settings"] = clean_settings(data["settings"])
    if "is_active" in data:
        if not isinstance(data["is_active"], bool):
            raise _invalid("is_active", "is_active must be true or false")
        changes["is_active"] = data["is_active"]
    async with engine().transaction():
        before = await load_node(node_id)
        if "email_domains" in data:
            if not caller.is_super_admin:
                raise Forbidden("Only super-admins change claimed e-mail domains")
            if before["level"] != NodeLevel.organization:
                raise _invalid("email_domains", "only organizations claim e-mail domains")
            await fetch("SELECT pg_advisory_xact_lock(hashtext('organization-domains'))")
            changes["email_domains"] = clean_domains(data["email_domains"])
            await _domains_free(changes["email_domains"], node_id)
        if not changes:
            return before
        casts = {"settings": "::jsonb", "email_domains": "::varchar[]"}
        assignments = set_clause(changes, first=2, casts=casts)
        try:
            rows = await fetch(
                f"UPDATE organization_hierarchy SET {assignments}, updated_at = now() WHERE id ="
                f" $1 RETURNING {NODE_COLUMNS}",
                node_id,
                *changes.values(),
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("A sibling already uses this slug", extra={"field": "slug"}) from None
        after = node_json(rows[0])
        await record_audit(
            action="node.updated",
            resource_type="node",
            resource_id=node_id,
            actor=caller,
            before=before,
            after=after,
            connection=connection,
        )
    return after


async def move_node(
    connection: Connection, caller: Caller, node_id: int, new_parent_id: Any
) -> dict[str, Any]:
    if isinstance(new_parent_id, bool) or not isinstance(new_parent_id, int):
        raise _invalid("parent_id", "parent_id must be a node id")
    await require_permission(caller, node_id, Permission.manage_settings)
    await require_permission(caller, new_parent_id, Permission.manage_settings)
    async with engine().transaction():
        before = await load_node(node_id)
        target = await load_node(new_parent_id)
        roots = sorted({before["path"][0], target["path"][0]})
        if len(roots) > 1 and not caller.is_super_admin:
            raise Forbidden("Only super-admins move nodes between organizations")
        for root in roots:  # a fixed order: two moves never deadlock
            await fetch("SELECT pg_advisory_xact_lock($1::bigint)", root)
        before = await load_node(node_id)  # re-read under the lock
        target = await load_node(new_parent_id)
        if node_id in target["path"]:
            raise _invalid("parent_id", "a node cannot move under itself or its descendants")
        if CHILD_LEVEL.get(NodeLevel(target["level"])) != NodeLevel(before["level"]):
            raise _invalid("parent_id", f"a {before['level']} cannot sit under a {target['level']}")
        try:
            rows = await fetch(
                "UPDATE organization_hierarchy SET parent_id = $2, updated_at = now() WHERE id ="
                f" $1 RETURNING {NODE_COLUMNS}",
                node_id,
                new_parent_id,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "The new parent already has a child with this slug", extra={"field": "slug"}
            ) from None
        except asyncpg.CheckViolationError:
            raise _invalid("parent_id", "this move would break the tree") from None
        after = node_json(rows[0])
        await record_audit(
            action="node.moved",
            resource_type="node",
            resource_id=node_id,
            actor=caller,
            before=before,
            after=after,
            connection=connection,
        )
    return after


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


def clean_role(role: Any) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise _invalid("role", f"role must be one of {', '.join(r.value for r in Role)}") from None


async def _target_user(caller: Caller, user_id: Any, node_id: int) -> int:
    """The person a write names: within the caller's reach (else 404 like an unknown id) and
    with no more authority at the node than the caller (else 403)."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 1:
        raise _invalid("user_id", "user_id must be a user id")
    await require_user_within_reach(caller, user_id, node_id, extra={"field": "user_id"})
    await require_no_more_authority(caller, user_id, node_id)
    return user_id


async def _clear_other_primaries(
    connection: Connection, caller: Caller, user_id: int, keep: int | None
) -> None:
    """Moving `is_primary` touches the user's other rows: only where the caller manages users,
    each change audited. Call inside the write's transaction."""
    others = await fetch(
        f"SELECT {ASSIGNMENT_COLUMNS} FROM user_hierarchy_assignments WHERE user_id = $1"
        " AND is_primary AND ($2::int IS NULL OR id <> $2) FOR UPDATE",
        user_id,
        keep,
    )
    for other in others:
        if not await may_manage_users_at(caller, other["node_id"]):
            raise Forbidden(
                "This person's primary assignment is at a node you do not manage",
                extra={"field": "is_primary"},
            )
    for other in others:
        rows = await fetch(
            "UPDATE user_hierarchy_assignments SET is_primary = false, updated_at = now()"
            f" WHERE id = $1 RETURNING {ASSIGNMENT_COLUMNS}",
            other["id"],
        )
        await record_audit(
            action="assignment.updated",
            resource_type="assignment",
            resource_id=other["id"],
            actor=caller,
            before=dict(other),
            after=dict(rows[0]),
            connection=connection,
        )


ASSIGNMENT_COLUMNS = "id, user_id, node_id, role, is_primary, is_active, granted_by_id, created_at"


async def assign_role(
    connection: Connection, caller: Caller, node_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    role = clean_role(data.get("role"))
    await _grantable(caller, node_id, ROLE_PERMISSIONS[role], f"the {role.value} role")
    user_id = await _target_user(caller, data.get("user_id"), node_id)
    primary = data.get("is_primary", False)
    if not isinstance(primary, bool):
        raise _invalid("is_primary", "is_primary must be true or false")
    async with engine().transaction():
        if primary:
            await _clear_other_primaries(connection, caller, user_id, None)
        try:
            rows = await fetch(
                "INSERT INTO user_hierarchy_assignments (user_id, node_id, role, is_primary,"
                " granted_by_id)"
                f" VALUES ($1, $2, $3, $4, $5) RETURNING {ASSIGNMENT_COLUMNS}",
                user_id,
                node_id,
                role.value,
                primary,
                caller.user_id,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "The user already has a role at this node", extra={"field": "user_id"}
            ) from None
        after = dict(rows[0])
        await record_audit(
            action="assignment.created",
            resource_type="assignment",
            resource_id=after["id"],
            actor=caller,
            after=after,
            connection=connection,
        )
    return after


async def _load_assignment(assignment_id: int) -> dict[str, Any]:
    rows = await fetch(
        f"SELECT {ASSIGNMENT_COLUMNS} FROM user_hierarchy_assignments WHERE id = $1", assignment_id
    )
    if not rows:
        raise NotFound("No such assignment", extra={"assignment_id": assignment_id})
    return dict(rows[0])


async def _reachable_assignment(caller: Caller, assignment_id: int) -> dict[str, Any]:
    assignment = await _load_assignment(assignment_id)
    decisions = await decisions_at(caller, assignment["node_id"])
    if decisions is None or not decisions[Permission.read].granted:
        raise NotFound("No such assignment", extra={"assignment_id": assignment_id})
    return assignment


async def update_assignment(
    connection: Connection, caller: Caller, assignment_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    before = await _reachable_assignment(caller, assignment_id)
    role = clean_role(data.get("role", before["role"]))
    needed = ROLE_PERMISSIONS[role] | ROLE_PERMISSIONS[Role(before["role"])]
    await _grantable(caller, before["node_id"], needed, f"the {role.value} role")
    await require_no_more_authority(caller, before["user_id"], before["node_id"])
    changes: dict[str, Any] = {"role": role.value}
    for field in ("is_primary", "is_active"):
        if field in data:
            if not isinstance(data[field], bool):
                raise _invalid(field, f"{field} must be true or false")
            changes[field] = data[field]
    async with engine().transaction():
        if changes.get("is_primary"):
            await _clear_other_primaries(connection, caller, before["user_id"], assignment_id)
        assignments = set_clause(changes, first=2)
        rows = await fetch(
            f"UPDATE user_hierarchy_assignments SET {assignments}, updated_at = now() WHERE id ="
            f" $1 RETURNING {ASSIGNMENT_COLUMNS}",
            assignment_id,
            *changes.values(),
        )
        after = dict(rows[0])
        await record_audit(
            action="assignment.updated",
            resource_type="assignment",
            resource_id=assignment_id,
            actor=caller,
            before=before,
            after=after,
            connection=connection,
        )
    return after


async def remove_assignment(connection: Connection, caller: Caller, assignment_id: int) -> None:
    before = await _reachable_assignment(caller, assignment_id)
    await _grantable(
        caller,
        before["node_id"],
        ROLE_PERMISSIONS[Role(before["role"])],
        f"the {before['role']} role",
    )
    await require_no_more_authority(caller, before["user_id"], before["node_id"])
    async with engine().transaction():
        await fetch("DELETE FROM user_hierarchy_assignments WHERE id = $1", assignment_id)
        await record_audit(
            action="assignment.deleted",
            resource_type="assignment",
            resource_id=assignment_id,
            actor=caller,
            before=before,
            connection=connection,
        )


OVERRIDE_COLUMNS = (
    "id, user_id, node_id, permission, granted, reason, granted_by_id, expires_at, created_at"
)


async def set_override(
    connection: Connection, caller: Caller, node_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    try:
        permission = Permission(str(data.get("permission")))
    except ValueError:
        raise _invalid(
            "permission", f"permission must be one of {', '.join(p.value for p in Permission)}"
        ) from None
    await _grantable(caller, node_id, frozenset({permission}), f"`{permission.value}`")
    user_id = await _target_user(caller, data.get("user_id"), node_id)
    granted, reason = data.get("granted"), data.get("reason", "")
    if not isinstance(granted, bool):
        raise _invalid("granted", "granted must be true or false")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000:
        raise _invalid("reason", "a reason of 1 to 1000 characters is required")
    expires_at = data.get("expires_at")
    if expires_at is not None:
        if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
            raise _invalid("expires_at", "expires_at must be a date-time with a time zone")
        if expires_at <= datetime.now(UTC):
            raise _invalid("expires_at", "expires_at must be in the future")
    async with engine().transaction():
        try:
            rows = await fetch(
                "INSERT INTO hierarchy_permission_overrides (user_id, node_id, permission,"
                " granted, reason, granted_by_id, expires_at)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {OVERRIDE_COLUMNS}",
                user_id,
                node_id,
                permission.value,
                granted,
                reason.strip(),
                caller.user_id,
                expires_at,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                "An override for this user and permission exists here",
                extra={"field": "permission"},
            ) from None
        after = dict(rows[0])
        await record_audit(
            action="permission_override.created",
            resource_type="permission_override",
            resource_id=after["id"],
            actor=caller,
            after=after,
            connection=connection,
        )
    return after


async def remove_override(connection: Connection, caller: Caller, override_id: int) -> None:
    rows = await fetch(
        f"SELECT {OVERRIDE_COLUMNS} FROM hierarchy_permission_overrides WHERE id = $1", override_id
    )
    decisions = await decisions_at(caller, rows[0]["node_id"]) if rows else None
    if not rows or decisions is None or not decisions[Permission.read].granted:
        raise NotFound("No such override", extra={"override_id": override_id})
    before = dict(rows[0])
    await _grantable(
        caller,
        before["node_id"],
        frozenset({Permission(before["permission"])}),
        f"`{before['permission']}`",
    )
    await require_no_more_authority(caller, before["user_id"], before["node_id"])
    async with engine().transaction():
        await fetch("DELETE FROM hierarchy_permission_overrides WHERE id = $1", override_id)
        await record_audit(
            action="permission_override.deleted",
            resource_type="permission_override",
            resource_id=override_id,
            actor=caller,
            before=before,
            connection=connection,
        )


async def update_user_flags(
    connection: Connection, caller: Caller, user_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    """Deactivate/reactivate a user or grant/revoke super-admin: super-admins only."""
    if not caller.is_super_admin:
        raise Forbidden("Only super-admins change these")
    changes: dict[str, Any] = {}
    for field in ("is_active", "is_super_admin"):
        if field in data:
            if not isinstance(data[field], bool):
                raise _invalid(field, f"{field} must be true or false")
            changes[field] = data[field]
    async with engine().transaction():
        rows = await fetch(
            "SELECT id, email, is_active, is_super_admin FROM users WHERE id = $1 FOR UPDATE",
            user_id,
        )
        if not rows:
            raise NotFound("No such user", extra={"user_id": user_id})
        before = dict(rows[0])
        if changes:
            assignments = set_clause(changes, first=2)
            rows = await fetch(
                f"UPDATE users SET {assignments}, updated_at = now() WHERE id = $1 RETURNING id,"
                " email, is_active, is_super_admin",
                user_id,
                *changes.values(),
            )
            if changes.get("is_active") is False:
                await end_user_sessions(user_id)
            await record_audit(
                action="user.updated",
                resource_type="user",
                resource_id=user_id,
                actor=caller,
                before=before,
                after=dict(rows[0]),
                connection=connection,
            )
    return dict(rows[0])
