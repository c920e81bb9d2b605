"""HTTP for the hierarchy: thin handlers over `service` (writes) and `access` (reads).

Request and response bodies are msgspec Structs (api.hierarchy.schemas); msgspec checks the
types, the service the rules, and every error names its field.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.auth.identity import Caller
from api.hierarchy import service
from api.hierarchy.access import (
    can_read_node,
    decisions_at,
    require_permission,
    require_user_within_reach,
)
from api.hierarchy.schemas import (
    Assignment,
    AssignmentCreate,
    AssignmentUpdate,
    EffectivePermissions,
    Move,
    Node,
    NodeCreate,
    NodeUpdate,
    OrganizationCreate,
    OrganizationSummary,
    OverrideCreate,
    PermissionOverrideRow,
    PermissionReason,
    UserFlags,
    UserUpdate,
    VisibleUser,
)
from api.platform.db.readiness import require_schema_and_strict_body
from api.platform.db.sql import fetch
from api.platform.http.errors import NotFound
from tables.enums import Permission
from tables.hierarchy import HierarchyNode, HierarchyPermissionOverride, UserHierarchyAssignment
from tables.users import User

MEMBER_ORGANIZATIONS = (
    "SELECT o.id FROM organization_hierarchy o WHERE o.parent_id IS NULL"
    " AND ($2 OR EXISTS (SELECT 1 FROM user_hierarchy_assignments a"
    " JOIN organization_hierarchy n ON n.id = a.node_id"
    " WHERE a.user_id = $1 AND a.is_active AND n.path[1] = o.id))"
)
"""Ids of the organizations the caller belongs to (all for super-admins): a correlated
EXISTS on path[1], which the query builder cannot say."""

Request_ = Request[Any, Any, Any]


@post("/organizations", operation_id="createOrganization", status_code=201)
async def create_organization(
    request: Request_, caller: NamedDependency[Caller], data: JSONBody[OrganizationCreate]
) -> Node:
    """Super-admins only: a new tenant, optionally claiming e-mail domains for provisioning."""
    return await service.create_organization(request, caller, data)


@get("/organizations", operation_id="listOrganizations")
async def list_organizations(caller: NamedDependency[Caller]) -> list[Node | OrganizationSummary]:
    """Organizations the caller belongs to (every one for super-admins): the whole row where
    the caller may read the organization node, elsewhere only its id, name and slug."""
    ids = [
        row["id"]
        for row in await fetch(MEMBER_ORGANIZATIONS, caller.user_id, caller.is_super_admin)
    ]
    if not ids:
        return []
    rows = (
        await HierarchyNode.select(*service.NODE_COLUMNS)
        .where(HierarchyNode.id.is_in(ids))
        .order_by(HierarchyNode.name)
    )
    return [
        service.as_node(row)
        if await can_read_node(caller, row["id"])
        else OrganizationSummary(row["id"], row["name"], row["slug"])
        for row in rows
    ]


@get("/nodes/{node_id:int}", operation_id="getNode")
async def get_node(caller: NamedDependency[Caller], node_id: FromPath[int]) -> Node:
    await require_permission(caller, node_id, Permission.read)
    return await service.load_node(node_id)


@get("/nodes/{node_id:int}/children", operation_id="listChildren")
async def list_children(caller: NamedDependency[Caller], node_id: FromPath[int]) -> list[Node]:
    await require_permission(caller, node_id, Permission.read)
    rows = (
        await HierarchyNode.select(*service.NODE_COLUMNS)
        .where(HierarchyNode.parent_id == node_id)
        .order_by(HierarchyNode.name)
    )
    return [service.as_node(row) for row in rows]


@post("/nodes/{node_id:int}/children", operation_id="createChildNode", status_code=201)
async def create_child(
    request: Request_,
    caller: NamedDependency[Caller],
    node_id: FromPath[int],
    data: JSONBody[NodeCreate],
) -> Node:
    """Needs `manage_settings` at the parent; the level follows from the parent's."""
    return await service.create_child(request, caller, node_id, data)


@patch("/nodes/{node_id:int}", operation_id="updateNode")
async def update_node(
    request: Request_,
    caller: NamedDependency[Caller],
    node_id: FromPath[int],
    data: JSONBody[NodeUpdate],
) -> Node:
    """Rename, re-slug, change settings or (de)activate: `manage_settings` at the node."""
    return await service.update_node(request, caller, node_id, data)


@post("/nodes/{node_id:int}/move", operation_id="moveNode", status_code=200)
async def move_node(
    request: Request_, caller: NamedDependency[Caller], node_id: FromPath[int], data: JSONBody[Move]
) -> Node:
    """Move a node (and its subtree, atomically) under a new parent: `manage_settings` at both."""
    return await service.move_node(request, caller, node_id, data.parent_id)


@post("/nodes/{node_id:int}/deactivate", operation_id="deactivateNode", status_code=200)
async def deactivate_node(
    request: Request_, caller: NamedDependency[Caller], node_id: FromPath[int]
) -> Node:
    return await service.update_node(request, caller, node_id, NodeUpdate(is_active=False))


@get("/nodes/{node_id:int}/assignments", operation_id="listAssignments")
async def list_assignments(
    caller: NamedDependency[Caller], node_id: FromPath[int]
) -> list[Assignment]:
    await require_permission(caller, node_id, Permission.read)
    rows = (
        await UserHierarchyAssignment.select(*service.ASSIGNMENT_COLUMNS)
        .where(UserHierarchyAssignment.node_id == node_id)
        .order_by(UserHierarchyAssignment.id)
    )
    return [msgspec.convert(row, Assignment) for row in rows]


@post("/nodes/{node_id:int}/assignments", operation_id="createAssignment", status_code=201)
async def create_assignment(
    request: Request_,
    caller: NamedDependency[Caller],
    node_id: FromPath[int],
    data: JSONBody[AssignmentCreate],
) -> Assignment:
    """`manage_users` at the node, and the caller must hold every permission of the role."""
    return await service.assign_role(request, caller, node_id, data)


@patch("/assignments/{assignment_id:int}", operation_id="updateAssignment")
async def update_assignment(
    request: Request_,
    caller: NamedDependency[Caller],
    assignment_id: FromPath[int],
    data: JSONBody[AssignmentUpdate],
) -> Assignment:
    return await service.update_assignment(request, caller, assignment_id, data)


@delete("/assignments/{assignment_id:int}", operation_id="deleteAssignment")
async def delete_assignment(
    request: Request_, caller: NamedDependency[Caller], assignment_id: FromPath[int]
) -> None:
    await service.remove_assignment(request, caller, assignment_id)


@get("/nodes/{node_id:int}/permission-overrides", operation_id="listPermissionOverrides")
async def list_overrides(
    caller: NamedDependency[Caller], node_id: FromPath[int]
) -> list[PermissionOverrideRow]:
    await require_permission(caller, node_id, Permission.manage_users)
    rows = (
        await HierarchyPermissionOverride.select(*service.OVERRIDE_COLUMNS)
        .where(HierarchyPermissionOverride.node_id == node_id)
        .order_by(HierarchyPermissionOverride.id)
    )
    return [msgspec.convert(row, PermissionOverrideRow) for row in rows]


@post(
    "/nodes/{node_id:int}/permission-overrides",
    operation_id="createPermissionOverride",
    status_code=201,
)
async def create_override(
    request: Request_,
    caller: NamedDependency[Caller],
    node_id: FromPath[int],
    data: JSONBody[OverrideCreate],
) -> PermissionOverrideRow:
    """Grant or revoke one permission for one user here (optionally until `expires_at`)."""
    return await service.set_override(request, caller, node_id, data)


@delete("/permission-overrides/{override_id:int}", operation_id="deletePermissionOverride")
async def delete_override(
    request: Request_, caller: NamedDependency[Caller], override_id: FromPath[int]
) -> None:
    await service.remove_override(request, caller, override_id)


hierarchy_router = Router(
    before_request=require_schema_and_strict_body,
    path="/api/v1/hierarchy",
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
async def list_users(
    caller: NamedDependency[Caller],
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    offset: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
) -> list[VisibleUser]:
    """Users assigned within the subtrees of the caller's own assignments (all for super-admins)."""
    rows = await fetch(VISIBLE_USERS, caller.user_id, caller.is_super_admin, limit, offset)
    return [VisibleUser(**dict(row)) for row in rows]


@get("/{user_id:int}/effective-permissions", operation_id="getEffectivePermissions")
async def effective_permissions(
    caller: NamedDependency[Caller], user_id: FromPath[int], node_id: FromQuery[int]
) -> EffectivePermissions:
    """A user's permissions at a node, each with its reason. Yourself, or `manage_users` there
    and the user within your reach (others answer 404 exactly like an unknown user id)."""
    if user_id != caller.user_id:
        await require_permission(caller, node_id, Permission.manage_users)
        await require_user_within_reach(caller, user_id, node_id, extra={"user_id": user_id})
    row = await (
        User.select(User.email, User.is_super_admin, User.is_active)
        .where(User.id == user_id)
        .first()
    )
    if row is None:
        raise NotFound("No such user", extra={"user_id": user_id})
    subject = Caller(user_id, row["email"], row["is_super_admin"] and row["is_active"], "session")
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
    request: Request_,
    caller: NamedDependency[Caller],
    user_id: FromPath[int],
    data: JSONBody[UserUpdate],
) -> UserFlags:
    """Super-admins: deactivate (ending every session at once) or grant/revoke super-admin."""
    return await service.update_user_flags(request, caller, user_id, data)


users_router = Router(
    before_request=require_schema_and_strict_body,
    path="/api/v1/users",
    tags=["users"],
    route_handlers=[list_users, effective_permissions, update_user],
)
