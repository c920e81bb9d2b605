"""What `GET /api/v1/auth/me` answers (its route is in routes.py): who I am, where I
belong, and what I may do at each of my nodes.

Three small indexed queries whatever the tree's size; the permissions come from the same
pure rule the guards use.
"""

from __future__ import annotations

import random
import time
from datetime import datetime

import msgspec

from api.auth.identity import Caller
from api.hierarchy import queries
from api.hierarchy.me_cache import ME_SECONDS, me_cache
from api.hierarchy.permissions import HeldRole, PermissionOverride, effective_permissions
from api.platform.http.errors import NotAuthenticated
from tables.enums import Permission, Role


class Organization(msgspec.Struct):
    id: int
    name: str
    slug: str


class MyAssignment(msgspec.Struct):
    """One of my roles as /me shows it: the node's names and what I may do there."""

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
    assignments: list[MyAssignment]


async def describe_me(caller: Caller) -> Me:
    user = await queries.active_user_profile(caller.user_id)
    if user is None:
        raise NotAuthenticated("Sign in first")
    rows = await queries.my_assignments(caller.user_id)
    overrides = await queries.my_live_overrides(caller.user_id)
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
            MyAssignment(
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
    left = await queries.seconds_to_next_expiry(caller.user_id)
    # Jittered by up to a fifth, so that entries made together do not all end together.
    longest = ME_SECONDS * (1 - 0.2 * random.random())
    until = started + min(longest, left if left is not None else longest)
    body = msgspec.json.encode(described)
    me_cache.put(caller, until, body, generation)
    return body
