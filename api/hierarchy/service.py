"""Writes to the organisation tree, assignments, overrides and users: the one write path of
this domain, used by the REST API and by Piccolo Admin (api/hierarchy/admin_ui.py).

Rules (PRODUCT §3.1): creating, renaming, moving or deactivating nodes needs
`manage_settings`; assigning roles and setting permission overrides needs `manage_users`;
nobody grants a role or permission they do not hold at that node, nor to themselves; a grant
made on the strength of a temporary override ends by the time that override does (a role,
which has no expiry, is refused then); only super-admins create organizations, claim e-mail
domains, change managed settings keys, move nodes between tenants or grant super-admin.

Each write: lock the row, compare `version` when one is sent, validate with `rules`, write
only what changed (nothing at all, and no audit row, when nothing did), audit. Moves lock
the affected organizations, so concurrent moves cannot lose an update.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from litestar.connection import ASGIConnection

from api.auth.identity import Caller
from api.auth.service import end_user_sessions, sessions_changed
from api.hierarchy import queries
from api.hierarchy.access import (
    decisions_at,
    grant_sources,
    may_manage_users_at,
    require_no_more_authority,
    require_permission,
    require_user_within_reach,
)
from api.hierarchy.permissions import ROLE_PERMISSIONS
from api.hierarchy.queries import (
    ASSIGNMENT_COLUMNS,
    NODE_COLUMNS,
    OVERRIDE_COLUMNS,
    USER_RECORD_COLUMNS,
    as_node,
    load_node,
)
from api.hierarchy.rules import (
    invalid,
    require_managed_unchanged,
    require_version,
    validate_domains,
    validate_expiry,
    validate_grant_reason,
    validate_managed_keys,
    validate_name,
    validate_person_name,
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
    OverrideUpdate,
    PermissionOverrideRow,
    UserRecord,
    UserStatus,
    UserUpdate,
)
from api.platform.db.audit import audited_change, record_audit
from api.platform.http.errors import Conflict, Forbidden, NotFound
from tables.enums import NodeLevel, Permission, Role
from tables.hierarchy import HierarchyNode, HierarchyPermissionOverride, UserHierarchyAssignment
from tables.users import User

CHILD_LEVEL = {NodeLevel.organization: NodeLevel.location, NodeLevel.location: NodeLevel.department}
MAX_SETTINGS_BYTES = 16 * 1024
MAX_SETTINGS_DEPTH = 20
DOMAIN_TAKEN = "An e-mail domain is claimed by another organization"

Connection = ASGIConnection[Any, Any, Any, Any]


def _given(value: Any) -> Any:
    """An optional field's value, None when it was not sent."""
    return None if value is msgspec.UNSET else value


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
        raise invalid("settings", "settings must be a JSON object")
    if _depth(settings) > MAX_SETTINGS_DEPTH:
        raise invalid("settings", f"settings may nest at most {MAX_SETTINGS_DEPTH} levels deep")
    encoded = json.dumps(settings, ensure_ascii=False, separators=(",", ":"))
    if len(encoded.encode()) > MAX_SETTINGS_BYTES:
        raise invalid("settings", f"settings may take at most {MAX_SETTINGS_BYTES} bytes as JSON")
    if "\\u0000" in encoded:  # Postgres jsonb cannot hold it
        raise invalid("settings", "settings may not contain NUL characters")
    return encoded


async def _claim_domains(domains: list[str], except_org: int | None) -> None:
    """Inside a transaction: take the domain lock, then refuse domains another org holds."""
    if not domains:
        return
    await queries.lock_domain_claims()
    if await queries.domains_taken(domains, except_org):
        raise Conflict(DOMAIN_TAKEN, extra={"field": "email_domains"})


def _node_write_error(error: asyncpg.PostgresError) -> Exception:
    """The database's own refusals of a node write, in the API's words."""
    constraint = getattr(error, "constraint_name", None)
    if constraint == "organization_domains_unique":
        return Conflict(DOMAIN_TAKEN, extra={"field": "email_domains"})
    if isinstance(error, asyncpg.UniqueViolationError):
        return Conflict("A sibling already uses this slug", extra={"field": "slug"})
    if constraint in ("hierarchy_settings_object", "hierarchy_settings_size"):
        return invalid("settings", "settings must be a JSON object of at most 16 KiB")
    return invalid("parent_id", "this change would break the tree")


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
    level: NodeLevel,
    fields: _NewNode,
    parent: int | None,
    domains: list[str],
    managed: list[str] | None = None,
) -> Node:
    row = HierarchyNode(
        level=level.value,
        name=fields.name,
        slug=fields.slug,
        parent_id=parent,
        email_domains=domains,
        managed_settings=managed or [],
        settings=fields.settings,
    )
    try:
        rows = await HierarchyNode.insert(row).returning(*NODE_COLUMNS)
    except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError) as error:
        raise _node_write_error(error) from None
    return as_node(rows[0])


async def create_organization(
    connection: Connection,
    caller: Caller,
    data: OrganizationCreate,
    managed_settings: list[str] | None = None,
) -> Node:
    if not caller.is_super_admin:
        raise Forbidden("Only super-admins create organizations")
    fields, domains = _new_node(data), validate_domains(data.email_domains)
    managed = validate_managed_keys(managed_settings or [])
    async with audited_change("node.created", "node", actor=caller, connection=connection) as c:
        await _claim_domains(domains, None)
        node = await _insert_node(NodeLevel.organization, fields, None, domains, managed)
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


def _node_changes(caller: Caller, before: Node, data: NodeUpdate) -> dict[Any, Any]:
    """Column → value for what `data` really changes, each field checked."""
    wanted: dict[Any, Any] = {}
    if data.name is not msgspec.UNSET:
        wanted[HierarchyNode.name] = validate_name(data.name)
    if data.slug is not msgspec.UNSET:
        wanted[HierarchyNode.slug] = validate_slug(data.slug)
    if data.is_active is not msgspec.UNSET:
        wanted[HierarchyNode.is_active] = data.is_active
    if data.settings is not msgspec.UNSET:
        encoded = clean_settings(data.settings)
        settings = None if encoded is None else json.loads(encoded)
        if settings != before.settings:
            if not caller.is_super_admin:
                require_managed_unchanged(before.managed_settings, before.settings, settings)
            wanted[HierarchyNode.settings] = encoded
    if data.email_domains is not msgspec.UNSET:
        domains = validate_domains(data.email_domains)
        if domains != before.email_domains:
            if not caller.is_super_admin:
                raise Forbidden(
                    "Only super-admins change claimed e-mail domains",
                    extra={"field": "email_domains"},
                )
            if before.level != NodeLevel.organization:
                raise invalid("email_domains", "only organizations claim e-mail domains")
            wanted[HierarchyNode.email_domains] = domains
    if data.managed_settings is not msgspec.UNSET:
        managed = validate_managed_keys(data.managed_settings)
        if managed != before.managed_settings:
            if not caller.is_super_admin:
                raise Forbidden(
                    "Only super-admins choose the managed settings keys",
                    extra={"field": "managed_settings"},
                )
            if before.level != NodeLevel.organization:
                raise invalid("managed_settings", "only organizations have managed settings")
            wanted[HierarchyNode.managed_settings] = managed
    current = msgspec.to_builtins(before)
    return {
        column: value
        for column, value in wanted.items()
        if column is HierarchyNode.settings or current[column._meta.name] != value
    }


async def update_node(
    connection: Connection, caller: Caller, node_id: int, data: NodeUpdate
) -> Node:
    await require_permission(caller, node_id, Permission.manage_settings)
    async with audited_change(
        "node.updated", "node", actor=caller, connection=connection, resource_id=node_id
    ) as change:
        before = change.before = await load_node(node_id, lock=True)
        require_version(before.version, _given(data.version))
        changes = _node_changes(caller, before, data)
        if not changes:
            change.skip = True
            return before
        if HierarchyNode.email_domains in changes:
            await _claim_domains(changes[HierarchyNode.email_domains], node_id)
        try:
            rows = await (
                HierarchyNode.update(changes)
                .where(HierarchyNode.id == node_id)
                .returning(*NODE_COLUMNS)
            )
        except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError) as error:
            raise _node_write_error(error) from None
        change.after = after = as_node(rows[0])
    return after


async def move_node(
    connection: Connection,
    caller: Caller,
    node_id: int,
    new_parent_id: int,
    version: int | None = None,
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
            await queries.lock_organization(root)
        before = change.before = await load_node(node_id, lock=True)  # re-read under the lock
        require_version(before.version, version)
        target = await load_node(new_parent_id)
        if before.parent_id == new_parent_id:
            change.skip = True
            return before
        if node_id in target.path:
            raise invalid("parent_id", "a node cannot move under itself or its descendants")
        if CHILD_LEVEL.get(NodeLevel(target.level)) != NodeLevel(before.level):
            raise invalid("parent_id", f"a {before.level} cannot sit under a {target.level}")
        try:
            rows = await (
                HierarchyNode.update({HierarchyNode.parent_id: new_parent_id})
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


async def delete_node(connection: Connection, caller: Caller, node_id: int) -> None:
    """Super-admins only, and only a node nothing refers to any more."""
    if not caller.is_super_admin:
        raise Forbidden("Only super-admins delete nodes")
    async with audited_change(
        "node.deleted", "node", actor=caller, connection=connection, resource_id=node_id
    ) as change:
        change.before = await load_node(node_id, lock=True)
        try:
            await HierarchyNode.delete().where(HierarchyNode.id == node_id)
        except asyncpg.ForeignKeyViolationError:
            raise Conflict(
                "This node still has children, assignments or overrides: remove those first",
                extra={"field": "id"},
            ) from None


def _now() -> datetime:
    return datetime.now(UTC)


# ---- grants ---------------------------------------------------------------------------------


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


def _not_to_yourself(caller: Caller, user_id: int) -> None:
    """Nobody but a super-admin grants themselves a role or permission (PRODUCT §3.1)."""
    if user_id == caller.user_id and not caller.is_super_admin:
        raise Forbidden(
            "You cannot grant yourself a role or permission: someone else who manages users"
            " here must",
            extra={"field": "user_id", "reason": "self_grant"},
        )


async def _derived_from(
    caller: Caller,
    node_id: int,
    needed: frozenset[Permission],
    what: str,
    *,
    expires_at: datetime | None,
    expires: bool,
) -> list[int]:
    """The overrides this grant rests on. On a temporary one, the grant must end by the time
    it does: an override with an expiry no later, never a role (roles do not expire)."""
    sources = await grant_sources(caller, node_id, needed)
    ends = min((s.expires_at for s in sources if s.expires_at is not None), default=None)
    if ends is not None:
        until = ends.astimezone(UTC).isoformat(timespec="seconds")
        if not expires:
            raise Forbidden(
                f"You hold what {what} needs here only until {until}: a role does not expire,"
                " so grant a permission override that ends by then instead",
                extra={"field": "role", "until": until},
            )
        if expires_at is None or expires_at > ends:
            raise Forbidden(
                f"You hold what {what} needs here only until {until}: the grant must expire"
                " by then",
                extra={"field": "expires_at", "until": until},
            )
    return [s.override_id for s in sources]


def clean_role(role: Any) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise invalid("role", f"role must be one of {', '.join(r.value for r in Role)}") from None


def clean_permission(permission: Any) -> Permission:
    try:
        return Permission(permission)
    except ValueError:
        raise invalid(
            "permission", f"permission must be one of {', '.join(p.value for p in Permission)}"
        ) from None


async def _target_user(caller: Caller, user_id: Any, node_id: int) -> int:
    """The person a write names: within the caller's reach (else 404 like an unknown id) and
    with no more authority at the node than the caller (else 403)."""
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 1:
        raise invalid("user_id", "user_id must be a user id")
    await require_user_within_reach(caller, user_id, node_id, extra={"field": "user_id"})
    await require_no_more_authority(caller, user_id, node_id)
    return user_id


async def _clear_other_primaries(
    connection: Connection, caller: Caller, user_id: int, keep: int | None
) -> None:
    """Moving `is_primary` touches the user's other rows: only where the caller manages users,
    each change audited. Call inside the write's transaction."""
    others = await queries.other_primaries(user_id, keep)
    for other in others:
        if not await may_manage_users_at(caller, other.node_id):
            raise Forbidden(
                "This person's primary assignment is at a node you do not manage",
                extra={"field": "is_primary"},
            )
    for other in others:
        rows = await (
            UserHierarchyAssignment.update({UserHierarchyAssignment.is_primary: False})
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
    what = f"the {role.value} role"
    await _grantable(caller, node_id, ROLE_PERMISSIONS[role], what)
    user_id = await _target_user(caller, data.user_id, node_id)
    _not_to_yourself(caller, user_id)
    derived = await _derived_from(
        caller, node_id, ROLE_PERMISSIONS[role], what, expires_at=None, expires=False
    )
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
            derived_from=derived,
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


async def _reachable_assignment(
    caller: Caller, assignment_id: int, *, lock: bool = False
) -> Assignment:
    found = await queries.assignment(assignment_id, lock=lock)
    decisions = await decisions_at(caller, found.node_id) if found else None
    if found is None or decisions is None or not decisions[Permission.read].granted:
        raise NotFound("No such assignment", extra={"assignment_id": assignment_id})
    return found


async def update_assignment(
    connection: Connection, caller: Caller, assignment_id: int, data: AssignmentUpdate
) -> Assignment:
    async with audited_change(
        "assignment.updated",
        "assignment",
        actor=caller,
        connection=connection,
        resource_id=assignment_id,
    ) as change:
        before = change.before = await _reachable_assignment(caller, assignment_id, lock=True)
        require_version(before.version, _given(data.version))
        role = clean_role(before.role if data.role is msgspec.UNSET else data.role)
        needed = ROLE_PERMISSIONS[role] | ROLE_PERMISSIONS[Role(before.role)]
        what = f"the {role.value} role"
        await _grantable(caller, before.node_id, needed, what)
        await require_no_more_authority(caller, before.user_id, before.node_id)
        changes: dict[Any, Any] = {}
        if role != before.role:
            changes[UserHierarchyAssignment.role] = role.value
        if data.is_primary is not msgspec.UNSET and data.is_primary != before.is_primary:
            changes[UserHierarchyAssignment.is_primary] = data.is_primary
        if data.is_active is not msgspec.UNSET and data.is_active != before.is_active:
            changes[UserHierarchyAssignment.is_active] = data.is_active
        if not changes:
            change.skip = True
            return before
        widens = UserHierarchyAssignment.role in changes or changes.get(
            UserHierarchyAssignment.is_active, False
        )
        if widens:
            _not_to_yourself(caller, before.user_id)
            changes[UserHierarchyAssignment.derived_from] = await _derived_from(
                caller, before.node_id, ROLE_PERMISSIONS[role], what, expires_at=None, expires=False
            )
        if data.is_primary is True and not before.is_primary:
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
    permission = clean_permission(data.permission)
    what = f"`{permission.value}`"
    await _grantable(caller, node_id, frozenset({permission}), what)
    user_id = await _target_user(caller, data.user_id, node_id)
    reason = validate_grant_reason(data.reason)
    validate_expiry(data.expires_at, _now())
    derived: list[int] = []
    if data.granted:
        _not_to_yourself(caller, user_id)
        derived = await _derived_from(
            caller, node_id, frozenset({permission}), what, expires_at=data.expires_at, expires=True
        )
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
            derived_from=derived,
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


async def _reachable_override(
    caller: Caller, override_id: int, *, lock: bool = False
) -> PermissionOverrideRow:
    found = await queries.override(override_id, lock=lock)
    decisions = await decisions_at(caller, found.node_id) if found else None
    if found is None or decisions is None or not decisions[Permission.read].granted:
        raise NotFound("No such override", extra={"override_id": override_id})
    return found


def _later(new: datetime | None, old: datetime | None) -> bool:
    """Whether expiry `new` ends later than `old` (None: never)."""
    if new is None:
        return old is not None
    return old is not None and new > old


async def update_override(
    connection: Connection, caller: Caller, override_id: int, data: OverrideUpdate
) -> PermissionOverrideRow:
    """Change whether it grants, why, or until when; widening it is a new grant."""
    async with audited_change(
        "permission_override.updated",
        "permission_override",
        actor=caller,
        connection=connection,
        resource_id=override_id,
    ) as change:
        before = change.before = await _reachable_override(caller, override_id, lock=True)
        require_version(before.version, _given(data.version))
        permission = Permission(before.permission)
        what = f"`{permission.value}`"
        await _grantable(caller, before.node_id, frozenset({permission}), what)
        await require_no_more_authority(caller, before.user_id, before.node_id)
        changes: dict[Any, Any] = {}
        if data.granted is not msgspec.UNSET and data.granted != before.granted:
            changes[HierarchyPermissionOverride.granted] = data.granted
        if data.reason is not msgspec.UNSET:
            reason = validate_grant_reason(data.reason)
            if reason != before.reason:
                changes[HierarchyPermissionOverride.reason] = reason
        expires_at = before.expires_at
        if data.expires_at is not msgspec.UNSET and data.expires_at != before.expires_at:
            validate_expiry(data.expires_at, _now())
            expires_at = changes[HierarchyPermissionOverride.expires_at] = data.expires_at
        if not changes:
            change.skip = True
            return before
        granted = changes.get(HierarchyPermissionOverride.granted, before.granted)
        if granted and (not before.granted or _later(expires_at, before.expires_at)):
            _not_to_yourself(caller, before.user_id)
            changes[HierarchyPermissionOverride.derived_from] = await _derived_from(
                caller,
                before.node_id,
                frozenset({permission}),
                what,
                expires_at=expires_at,
                expires=True,
            )
        rows = await (
            HierarchyPermissionOverride.update(changes)
            .where(HierarchyPermissionOverride.id == override_id)
            .returning(*OVERRIDE_COLUMNS)
        )
        after = change.after = msgspec.convert(rows[0], PermissionOverrideRow)
    return after


async def remove_override(connection: Connection, caller: Caller, override_id: int) -> None:
    """Also ends every grant made on its strength (the database's `end_derived_grants`)."""
    before = await _reachable_override(caller, override_id)
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


# ---- users ----------------------------------------------------------------------------------


async def update_user(
    connection: Connection, caller: Caller, user_id: int, data: UserUpdate
) -> UserStatus:
    """Deactivate/reactivate, grant/revoke super-admin, or rename: super-admins only."""
    if not caller.is_super_admin:
        raise Forbidden("Only super-admins change these")
    wanted: dict[str, Any] = {}
    for name in ("is_active", "is_super_admin"):
        value = getattr(data, name)
        if value is not msgspec.UNSET:
            wanted[name] = value
    for name in ("name", "given_name", "family_name"):
        value = getattr(data, name)
        if value is not msgspec.UNSET:
            wanted[name] = validate_person_name(name, value)
    async with audited_change(
        "user.updated", "user", actor=caller, connection=connection, resource_id=user_id
    ) as change:
        before = await queries.user_record(user_id, lock=True)
        if before is None:
            raise NotFound("No such user", extra={"user_id": user_id})
        change.before = before
        require_version(before.version, _given(data.version))
        changes: dict[Any, Any] = {
            User._meta.get_column_by_name(name): value
            for name, value in wanted.items()
            if getattr(before, name) != value
        }
        if not changes:
            change.skip = True
            return _status(before)
        rows = await User.update(changes).where(User.id == user_id).returning(*USER_RECORD_COLUMNS)
        if changes.get(User.is_active) is False:
            await end_user_sessions(user_id)
        sessions_changed()  # cached sessions carry is_super_admin: this process drops them now
        after = change.after = msgspec.convert(rows[0], UserRecord)
    return _status(after)


def _status(record: UserRecord) -> UserStatus:
    return UserStatus(
        record.id, record.email, record.is_active, record.is_super_admin, record.version
    )
