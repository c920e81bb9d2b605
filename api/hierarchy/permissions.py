"""Effective permissions (PRODUCT §3.1) as a pure function: no I/O, typed in and out.

1. An active super-admin holds every permission everywhere.
2. Walking from the node up to its root, the first node carrying an unexpired override for
   (user, permission) decides, granted or revoked.
3. Otherwise the permission is held iff an active assignment at the node or an ancestor has
   a role that includes it (a role at a node covers its whole subtree).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from tables.enums import Permission, Role

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.org_admin: frozenset(Permission),
    Role.location_manager: frozenset(
        {Permission.read, Permission.write, Permission.manage_users, Permission.view_reports}
    ),
    Role.department_lead: frozenset({Permission.read, Permission.write, Permission.view_reports}),
    Role.user: frozenset({Permission.read, Permission.view_reports}),
    Role.viewer: frozenset({Permission.read}),
}


@dataclass(frozen=True, slots=True)
class HeldRole:
    node_id: int
    role: Role


@dataclass(frozen=True, slots=True)
class PermissionOverride:
    node_id: int
    permission: Permission
    granted: bool


Source = Literal["super_admin", "override", "role", "none"]


@dataclass(frozen=True, slots=True)
class Decision:
    permission: Permission
    granted: bool
    source: Source
    node_id: int | None = None
    role: Role | None = None


def decide(
    permission: Permission,
    path: Sequence[int],
    roles: Iterable[HeldRole],
    overrides: Iterable[PermissionOverride],
    *,
    is_super_admin: bool,
) -> Decision:
    """Whether the user holds `permission` at the last node of `path` (root first), and why."""
    if is_super_admin:
        return Decision(permission, True, "super_admin")
    on_path = set(path)
    deciding = {
        o.node_id: o for o in overrides if o.permission == permission and o.node_id in on_path
    }
    depth = {node_id: index for index, node_id in enumerate(path)}
    for node_id in reversed(path):
        override = deciding.get(node_id)
        if override is not None:
            return Decision(permission, override.granted, "override", node_id)
    holding = [r for r in roles if r.node_id in on_path and permission in ROLE_PERMISSIONS[r.role]]
    if holding:
        nearest = max(holding, key=lambda r: depth[r.node_id])
        return Decision(permission, True, "role", nearest.node_id, nearest.role)
    return Decision(permission, False, "none")


def effective_permissions(
    path: Sequence[int],
    roles: Sequence[HeldRole],
    overrides: Sequence[PermissionOverride],
    *,
    is_super_admin: bool,
) -> dict[Permission, Decision]:
    return {
        permission: decide(permission, path, roles, overrides, is_super_admin=is_super_admin)
        for permission in Permission
    }
