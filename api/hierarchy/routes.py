"""HTTP for the hierarchy: thin handlers over `service` (writes) and `access` (reads).

Request bodies are plain JSON objects validated by the service, so the same rules serve
every caller and every error names its field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Router, delete, get, patch, post

from api.auth.guards import provide_caller, require_user
from api.auth.identity import Caller
from api.db import fetch
from api.errors import InvalidInput, NotFound
from api.hierarchy import service
from api.hierarchy.access import (
    can_read_node,
    decisions_at,
    require_permission,
    require_user_within_reach,
)
from api.request_body import require_strict_body
from tables.enums import Permission

JSON = dict[str, Any]


class NodeCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    slug: str
    settings: dict[str, Any] | None = None


class OrganizationCreate(NodeCreate, forbid_unknown_fields=True):
    email_domains: list[str] = msgspec.field(default_factory=list)


class NodeUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    slug: str | msgspec.UnsetType = msgspec.UNSET
    settings: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    email_domains: list[str] | msgspec.UnsetType = msgspec.UNSET


class Move(msgspec.Struct, forbid_unknown_fields=True):
    parent_id: int


class AssignmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    user_id: int
    role: str
    is_primary: bool = False


class AssignmentUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    role: str | msgspec.UnsetType = msgspec.UNSET
    is_primary: bool | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET


class OverrideCreate(msgspec.Struct, forbid_unknown_fields=True):
    user_id: int
    permission: str
    granted: bool
    reason: str
    expires_at: datetime | None = None


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    is_super_admin: bool | msgspec.UnsetType = msgspec.UNSET


class PermissionReason(msgspec.Struct):
    permission: str
    granted: bool
    source: str
    node_id: int | None
    role: str | None


class EffectivePermissions(msgspec.Struct):
    user_id: int
    node_id: int
    permissions: list[PermissionReason]


def _body(data: msgspec.Struct) -> JSON:
    return {
        k: getattr(data, k) for k in data.__struct_fields__ if getattr(data, k) is not msgspec.UNSET
    }


@post("/organizations", operation_id="createOrganization", status_code=201)
async def create_organization(
    request: Request[Any, Any, Any], caller: Caller, data: OrganizationCreate
) -> JSON:
    """Super-admins only: a new tenant, optionally claiming e-mail domains for provisioning."""
    return await service.create_organization(request, caller, _body(data))


@get("/organizations", operation_id="listOrganizations")
async def list_organizations(caller: Caller) -> list[JSON]:
    """Organizations the caller belongs to (every one for super-admins): the whole row where
    the caller may read the organization node, elsewhere only its id, name and slug."""
    rows = await fetch(
        f"SELECT {service.NODE_COLUMNS} FROM organization_hierarchy o WHERE o.parent_id IS NULL"
        " AND ($2 OR EXISTS (SELECT 1 FROM user_hierarchy_assignments a JOIN"
        " organization_hierarchy n"
        " ON n.id = a.node_id WHERE a.user_id = $1 AND a.is_active AND n.path[1] = o.id)) ORDER"
        " BY o.name",
        caller.user_id,
        caller.is_super_admin,
    )
    return [
        service.node_json(row)
        if await can_read_node(caller, row["id"])
        else {key: row[key] for key in ("id", "name", "slug")}
        for row in rows
    ]


@get("/nodes/{node_id:int}", operation_id="getNode")
async def get_node(caller: Caller, node_id: int) -> JSON:
    await require_permission(caller, node_id, Permission.read)
    return await service.load_node(node_id)


@get("/nodes/{node_id:int}/children", operation_id="listChildren")
async def list_children(caller: Caller, node_id: int) -> list[JSON]:
    await require_permission(caller, node_id, Permission.read)
    rows = await fetch(
        f"SELECT {service.NODE_COLUMNS} FROM organization_hierarchy WHERE parent_id = $1 ORDER BY"
        " name",
        node_id,
    )
    return [service.node_json(row) for row in rows]


@post("/nodes/{node_id:int}/children", operation_id="createChildNode", status_code=201)
async def create_child(
    request: Request[Any, Any, Any], caller: Caller, node_id: int, data: NodeCreate
) -> JSON:
    """Needs `manage_settings` at the parent; the level follows from the parent's."""
    return await service.create_child(request, caller, node_id, _body(data))


@patch("/nodes/{node_id:int}", operation_id="updateNode")
async def update_node(
    request: Request[Any, Any, Any], caller: Caller, node_id: int, data: NodeUpdate
) -> JSON:
    """Rename, re-slug, change settings or (de)activate: `manage_settings` at the node."""
    return await service.update_node(request, caller, node_id, _body(data))


@post("/nodes/{node_id:int}/move", operation_id="moveNode", status_code=200)
async def move_node(
    request: Request[Any, Any, Any], caller: Caller, node_id: int, data: Move
) -> JSON:
    """Move a node (and its subtree, atomically) under a new parent: `manage_settings` at both."""
    return await service.move_node(request, caller, node_id, data.parent_id)


@post("/nodes/{node_id:int}/deactivate", operation_id="deactivateNode", status_code=200)
async def deactivate_node(request: Request[Any, Any, Any], caller: Caller, node_id: int) -> JSON:
    return await service.update_node(request, caller, node_id, {"is_active": False})


@get("/nodes/{node_id:int}/assignments", operation_id="listAssignments")
async def list_assignments(caller: Caller, node_id: int) -> list[JSON]:
    await require_permission(caller, node_id, Permission.read)
    rows = await fetch(
        f"SELECT {service.ASSIGNMENT_COLUMNS} FROM user_hierarchy_assignments WHERE node_id = $1"
        " ORDER BY id",
        node_id,
    )
    return [dict(row) for row in rows]


@post("/nodes/{node_id:int}/assignments", operation_id="createAssignment", status_code=201)
async def create_assignment(
    request: Request[Any, Any, Any], caller: Caller, node_id: int, data: AssignmentCreate
) -> JSON:
    """`manage_users` at the node, and the caller must hold every permission of the role."""
    return await service.assign_role(request, caller, node_id, _body(data))


@patch("/assignments/{assignment_id:int}", operation_id="updateAssignment")
async def update_assignment(
    request: Request[Any, Any, Any], caller: Caller, assignment_id: int, data: AssignmentUpdate
) -> JSON:
    return await service.update_assignment(request, caller, assignment_id, _body(data))


@delete("/assignments/{assignment_id:int}", operation_id="deleteAssignment")
async def delete_assignment(
    request: Request[Any, Any, Any], caller: Caller, assignment_id: int
) -> None:
    await service.remove_assignment(request, caller, assignment_id)


@get("/nodes/{node_id:int}/permission-overrides", operation_id="listPermissionOverrides")
async def list_overrides(caller: Caller, node_id: int) -> list[JSON]:
    await require_permission(caller, node_id, Permission.manage_users)
    rows = await fetch(
        f"SELECT {service.OVERRIDE_COLUMNS} FROM hierarchy_permission_overrides WHERE node_id ="
        " $1 ORDER BY id",
        node_id,
    )
    return [dict(row) for row in rows]


@post(
    "/nodes/{node_id:int}/permission-overrides",
    operation_id="createPermissionOverride",
    status_code=201,
)
async def create_override(
    request: Request[Any, Any, Any], caller: Caller, node_id: int, data: OverrideCreate
) -> JSON:
    """Grant or revoke one permission for one user here (optionally until `expires_at`)."""
    return await service.set_override(request, caller, node_id, _body(data))


@delete("/permission-overrides/{override_id:int}", operation_id="deletePermissionOverride")
async def delete_override(
    request: Request[Any, Any, Any], caller: Caller, override_id: int
) -> None:
    await service.remove_override(request, caller, override_id)


hierarchy_router = Router(
    before_request=require_strict_body,
    path="/api/v1/hierarchy",
    guards=[require_user],
    dependencies={"caller": provide_caller},
    tags=["hierarchy"],
    route_handlers=[
        create_organization,
        list_organizations,
        get_node,
        list_children,
        create_child,
        update_node,
        move_node,
        deactivate_node,
        list_assignments,
        create_assignment,
        update_assignment,
        delete_assignment,
        list_overrides,
        create_override,
        delete_override,
    ],
)


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


@get("/", operation_id="listUsers")
async def list_users(caller: Caller, limit: int = 50, offset: int = 0) -> list[JSON]:
    """Users assigned within the subtrees of the caller's own assignments (all for super-admins)."""
    if not 1 <= limit <= 500 or not 0 <= offset <= 10_000_000:
        raise InvalidInput("limit must be 1..500 and offset 0..10000000", extra={"field": "limit"})
    rows = await fetch(VISIBLE_USERS, caller.user_id, caller.is_super_admin, limit, offset)
    return [dict(row) for row in rows]


@get("/{user_id:int}/effective-permissions", operation_id="getEffectivePermissions")
async def effective_permissions(caller: Caller, user_id: int, node_id: int) -> EffectivePermissions:
    """A user's permissions at a node, each with its reason. Yourself, or `manage_users` there
    and the user within your reach (others answer 404 exactly like an unknown user id)."""
    if user_id != caller.user_id:
        await require_permission(caller, node_id, Permission.manage_users)
        await require_user_within_reach(caller, user_id, node_id, extra={"user_id": user_id})
    rows = await fetch(
        "SELECT id, email, is_super_admin, is_active FROM users WHERE id = $1", user_id
    )
    if not rows:
        raise NotFound("No such user", extra={"user_id": user_id})
    subject = Caller(
        user_id, rows[0]["email"], rows[0]["is_super_admin"] and rows[0]["is_active"], "session"
    )
    decisions = await decisions_at(subject, node_id)
    if decisions is None or (user_id == caller.user_id and not decisions[Permission.read].granted):
        raise NotFound("No such node", extra={"node_id": node_id})
    return EffectivePermissions(
        user_id,
        node_id,
        [
            PermissionReason(
                p.value, d.granted, d.source, d.node_id, d.role.value if d.role else None
            )
            for p, d in decisions.items()
        ],
    )


@patch("/{user_id:int}", operation_id="updateUser")
async def update_user(
    request: Request[Any, Any, Any], caller: Caller, user_id: int, data: UserUpdate
) -> JSON:
    """Super-admins: deactivate (ending every session at once) or grant/revoke super-admin."""
    return await service.update_user_flags(request, caller, user_id, _body(data))


users_router = Router(
    before_request=require_strict_body,
    path="/api/v1/users",
    guards=[require_user],
    dependencies={"caller": provide_caller},
    tags=["users"],
    route_handlers=[list_users, effective_permissions, update_user],
)
