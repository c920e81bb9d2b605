"""HTTP for the hierarchy, users and /me: thin handlers over `service` (writes), `queries`
and `access` (reads). No SQL here.

Request and response bodies are msgspec Structs (api.hierarchy.schemas); msgspec checks the
types, the service the rules, and every error names its field.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.auth.guards import authenticated, super_admin
from api.auth.identity import Caller
from api.hierarchy import queries, service
from api.hierarchy.access import (
    can_read_node,
    decisions_at,
    require_permission,
    require_user_within_reach,
)
from api.hierarchy.me import Me, described_me_json
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
    OverrideUpdate,
    PermissionOverrideRow,
    PermissionReason,
    UserStatus,
    UserUpdate,
    VisibleUser,
)
from api.platform.db.readiness import require_schema_and_strict_body
from api.platform.http.errors import NotFound
from api.platform.http.responses import EncodedJSON
from tables.enums import Permission

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
    return [
        node
        if await can_read_node(caller, node.id)
        else OrganizationSummary(node.id, node.name, node.slug)
        for node in await queries.member_organizations(caller.user_id, caller.is_super_admin)
    ]


@get("/nodes/{node_id:int}", operation_id="getNode")
async def get_node(caller: NamedDependency[Caller], node_id: FromPath[int]) -> Node:
    await require_permission(caller, node_id, Permission.read)
    return await queries.load_node(node_id)


@get("/nodes/{node_id:int}/children", operation_id="listChildren")
async def list_children(caller: NamedDependency[Caller], node_id: FromPath[int]) -> list[Node]:
    await require_permission(caller, node_id, Permission.read)
    return await queries.children(node_id)


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
    return await queries.assignments_at(node_id)


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
    return await queries.overrides_at(node_id)


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


@patch("/permission-overrides/{override_id:int}", operation_id="updatePermissionOverride")
async def update_override(
    request: Request_,
    caller: NamedDependency[Caller],
    override_id: FromPath[int],
    data: JSONBody[OverrideUpdate],
) -> PermissionOverrideRow:
    """Change whether it grants, its reason or its expiry (widening it is a new grant)."""
    return await service.update_override(request, caller, override_id, data)


@delete("/permission-overrides/{override_id:int}", operation_id="deletePermissionOverride")
async def delete_override(
    request: Request_, caller: NamedDependency[Caller], override_id: FromPath[int]
) -> None:
    """Also ends every grant made on the strength of this one (PRODUCT §3.1)."""
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
        update_override,
        delete_override,
    ],
)


@get("/", operation_id="listUsers")
async def list_users(
    caller: NamedDependency[Caller],
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    offset: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
) -> list[VisibleUser]:
    """Users assigned within the subtrees of the caller's own assignments (all for super-admins)."""
    return await queries.visible_users(caller.user_id, caller.is_super_admin, limit, offset)


@get("/{user_id:int}/effective-permissions", operation_id="getEffectivePermissions")
async def effective_permissions(
    caller: NamedDependency[Caller], user_id: FromPath[int], node_id: FromQuery[int]
) -> EffectivePermissions:
    """A user's permissions at a node, each with its reason. Yourself, or `manage_users` there
    and the user within your reach (others answer 404 exactly like an unknown user id)."""
    if user_id != caller.user_id:
        await require_permission(caller, node_id, Permission.manage_users)
        await require_user_within_reach(caller, user_id, node_id, extra={"user_id": user_id})
    row = await queries.user_standing(user_id)
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


@patch("/{user_id:int}", operation_id="updateUser", guards=[super_admin])
async def update_user(
    request: Request_,
    caller: NamedDependency[Caller],
    user_id: FromPath[int],
    data: JSONBody[UserUpdate],
) -> UserStatus:
    """Super-admins: deactivate (ending every session at once), grant/revoke super-admin, or
    change the display names."""
    return await service.update_user(request, caller, user_id, data)


users_router = Router(
    before_request=require_schema_and_strict_body,
    path="/api/v1/users",
    tags=["users"],
    route_handlers=[list_users, effective_permissions, update_user],
)


@get("/api/v1/auth/me", tags=["auth"], operation_id="me")
async def me(request: Request_) -> Response[Me]:
    """`describe_me`, encoded once per user and cached until it changes (me_cache)."""
    caller = await authenticated(request)  # the `caller` rule as a call: the hot path skips DI
    return EncodedJSON(await described_me_json(caller))
