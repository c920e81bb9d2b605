"""`GET /api/v1/auth/me`: who I am, where I belong, and what I may do at each of my nodes.

Three small indexed queries whatever the tree's size; the permissions come from the same
pure rule the guards use.
"""

from __future__ import annotations

import random
import time
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response, get

from api.auth.guards import authenticated
from api.auth.identity import Caller
from api.hierarchy.me_cache import ME_SECONDS, me_cache
from api.hierarchy.permissions import HeldRole, PermissionOverride, effective_permissions
from api.platform.db.sql import fetch
from api.platform.http.errors import NotAuthenticated
from api.platform.http.responses import EncodedJSON
from tables.enums import Permission, Role


class Organization(msgspec.Struct):
    id: int
    name: str
    slug: str


class Assignment(msgspec.Struct):
    id: int
    node_id: int
    node_name: str
    level: str
    path: list[int]
    path_names: list[str]  # the names along `path`, root first: "Acme Retail", "Paris", …
    organization_id: int
    role: str
    is_primary: bool
    effective_permissions: list[str]


class Me(msgspec.Struct):
    id: int
    email: str | None
    name: str
    given_name: str
    family_name: str
    is_super_admin: bool
    last_login_at: datetime | None
    organizations: list[Organization]
    assignments: list[Assignment]


async def describe_me(caller: Caller) -> Me:
    users = await fetch(
        "SELECT id, email, name, given_name, family_name, is_super_admin, last_login_at"
        " FROM users WHERE id = $1 AND is_active",
        caller.user_id,
    )
    if not users:
        raise NotAuthenticated("Sign in first")
    rows = await fetch(
        "SELECT a.id, a.node_id, a.role, a.is_primary, n.name, n.level, n.path,"
        " ARRAY(SELECT p.name FROM unnest(n.path) WITH ORDINALITY AS u(id, depth)"
        " JOIN organization_hierarchy p ON p.id = u.id ORDER BY u.depth) AS path_names,"
        " root.id AS org_id, root.name AS org_name, root.slug AS org_slug"
        " FROM user_hierarchy_assignments a JOIN organization_hierarchy n ON n.id = a.node_id"
        " JOIN organization_hierarchy root ON root.id = n.path[1]"
        " WHERE a.user_id = $1 AND a.is_active ORDER BY root.name, n.path",
        caller.user_id,
    )
    overrides = await fetch(
        "SELECT node_id, permission, granted FROM hierarchy_permission_overrides"
        " WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > now())",
        caller.user_id,
    )
    held = [HeldRole(r["node_id"], Role(r["role"])) for r in rows]
    overriding = [
        PermissionOverride(o["node_id"], Permission(o["permission"]), o["granted"])
        for o in overrides
    ]
    assignments = []
    organizations: dict[int, Organization] = {}
    for row in rows:
        decisions = effective_permissions(
            row["path"], held, overriding, is_super_admin=caller.is_super_admin
        )
        organizations.setdefault(
            row["org_id"], Organization(row["org_id"], row["org_name"], row["org_slug"])
        )
        assignments.append(
            Assignment(
                id=row["id"],
                node_id=row["node_id"],
                node_name=row["name"],
                level=row["level"],
                path=list(row["path"]),
                path_names=list(row["path_names"]),
                organization_id=row["org_id"],
                role=row["role"],
                is_primary=row["is_primary"],
                effective_permissions=sorted(p.value for p, d in decisions.items() if d.granted),
            )
        )
    user = users[0]
    return Me(
        id=user["id"],
        email=user["email"],
        name=user["name"],
        given_name=user["given_name"],
        family_name=user["family_name"],
        is_super_admin=user["is_super_admin"],
        last_login_at=user["last_login_at"],
        organizations=list(organizations.values()),
        assignments=assignments,
    )


async def described_me_json(caller: Caller) -> bytes:
    """`describe_me(caller)` encoded, from the cache when it can be trusted."""
    body = me_cache.get(caller)
    if body is not None:
        return body
    generation = me_cache.generation
    started = time.monotonic()
    described = await describe_me(caller)
    rows = await fetch(
        "SELECT EXTRACT(EPOCH FROM min(expires_at) - now()) AS left"
        " FROM hierarchy_permission_overrides WHERE user_id = $1 AND expires_at > now()",
        caller.user_id,
    )
    left = rows[0]["left"] if rows else None
    # Jittered by up to a fifth, so that entries made together do not all end together.
    longest = ME_SECONDS * (1 - 0.2 * random.random())
    until = started + min(longest, float(left) if left is not None else longest)
    body = msgspec.json.encode(described)
    me_cache.put(caller, until, body, generation)
    return body


@get("/api/v1/auth/me", tags=["auth"], operation_id="me")
async def me(request: Request[Any, Any, Any]) -> Response[Me]:
    """`describe_me`, encoded once per user and cached until it changes (me_cache)."""
    caller = await authenticated(request)  # the `caller` rule as a call: the hot path skips DI
    return EncodedJSON(await described_me_json(caller))
