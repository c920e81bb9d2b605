"""Loads what the permission rule needs in one indexed query, whatever the tree's size, and
holds the reach rules every guard, write and report shares.

The node's `path` column holds its ancestors, so assignments and overrides on the path are
two index lookups on (user_id, node_id) inside the same statement.

Reach (issue 11): whoever is not a super-admin
- sees a node only with `read` there (else 404, exactly like a node that does not exist);
- names another person at node N only if that person is a member of N's organization
  (an active assignment anywhere in that tenant, e.g. the `viewer` row provisioning gives
  a claimed domain); anyone else answers 404 exactly like a user id that does not exist;
- changes another person's access at N (assign, change or remove a role, grant or revoke
  an override) only if that person holds no permission at N the caller lacks there, and
  never a super-admin;
- touches another row as a side effect (moving someone's `is_primary`) only where they
  hold `manage_users`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from api.auth.identity import Caller
from api.hierarchy import queries
from api.hierarchy.permissions import (
    Decision,
    HeldRole,
    PermissionOverride,
    decide,
    effective_permissions,
)
from api.platform.http.errors import Forbidden, NotFound
from tables.enums import Permission, Role


@dataclass(frozen=True, slots=True)
class OverrideSource:
    """The override row behind a permission: what a grant made on its strength derives from."""

    override_id: int
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class AccessFacts:
    path: tuple[int, ...]
    roles: tuple[HeldRole, ...]
    overrides: tuple[PermissionOverride, ...]
    sources: dict[tuple[int, Permission], OverrideSource] = field(default_factory=dict)
    """(node, permission) → the live override row there."""


async def load_access(user_id: int, node_id: int) -> AccessFacts | None:
    """Everything the rule needs about (user, node); None when the node does not exist."""
    rows = await queries.access_rows(user_id, node_id)
    if not rows:
        return None
    roles = tuple(HeldRole(r["node_id"], Role(r["value"])) for r in rows if r["kind"] == "role")
    overriding = [r for r in rows if r["kind"] == "override"]
    overrides = tuple(
        PermissionOverride(r["node_id"], Permission(r["value"]), r["granted"]) for r in overriding
    )
    sources = {
        (r["node_id"], Permission(r["value"])): OverrideSource(r["override_id"], r["expires_at"])
        for r in overriding
    }
    return AccessFacts(tuple(rows[0]["path"]), roles, overrides, sources)


async def decisions_at(caller: Caller, node_id: int) -> dict[Permission, Decision] | None:
    facts = await load_access(caller.user_id, node_id)
    if facts is None:
        return None
    return effective_permissions(
        facts.path, facts.roles, facts.overrides, is_super_admin=caller.is_super_admin
    )


async def grant_sources(
    caller: Caller, node_id: int, needed: frozenset[Permission]
) -> list[OverrideSource]:
    """The override rows the caller's authority to grant `needed` at the node rests on
    (`manage_users` included): a grant made on them derives from them (PRODUCT §3.1)."""
    if caller.is_super_admin:
        return []
    facts = await load_access(caller.user_id, node_id)
    if facts is None:
        return []
    found: dict[int, OverrideSource] = {}
    for permission in needed | {Permission.manage_users}:
        decision = decide(
            permission, facts.path, facts.roles, facts.overrides, is_super_admin=False
        )
        if decision.source == "override" and decision.node_id is not None:
            source = facts.sources[(decision.node_id, permission)]
            found[source.override_id] = source
    return sorted(found.values(), key=lambda s: s.override_id)


async def check_permission(
    user_id: int, node_id: int, permission: Permission, *, is_super_admin: bool
) -> Decision | None:
    """The single permission check the guards, the API and /me all use."""
    facts = await load_access(user_id, node_id)
    if facts is None:
        return None
    return decide(
        permission, facts.path, facts.roles, facts.overrides, is_super_admin=is_super_admin
    )


async def require_permission(caller: Caller, node_id: int, permission: Permission) -> None:
    """404 when the node is unknown or outside the caller's reach (no existence leak), 403
    when the caller may see it but lacks `permission` there."""
    decisions = await decisions_at(caller, node_id)
    if decisions is None or not decisions[Permission.read].granted:
        raise NotFound("No such node", extra={"node_id": node_id})
    if not decisions[permission].granted:
        raise Forbidden(
            f"The `{permission.value}` permission is needed at this node",
            extra={"permission": permission.value, "node_id": node_id},
        )


async def can_read_node(caller: Caller, node_id: int) -> bool:
    decision = await check_permission(
        caller.user_id, node_id, Permission.read, is_super_admin=caller.is_super_admin
    )
    return decision is not None and decision.granted


async def may_manage_users_at(caller: Caller, node_id: int) -> bool:
    decision = await check_permission(
        caller.user_id, node_id, Permission.manage_users, is_super_admin=caller.is_super_admin
    )
    return decision is not None and decision.granted


async def user_within_reach(caller: Caller, user_id: int, node_id: int) -> bool:
    """Whether the caller may name `user_id` at `node_id` (see the module's reach rules)."""
    if caller.is_super_admin:
        return await queries.active_super_admin(user_id) is not None
    if user_id == caller.user_id:
        return True
    return await queries.is_member_of_organization(user_id, node_id)


async def require_user_within_reach(
    caller: Caller, user_id: int, node_id: int, *, extra: dict[str, object]
) -> None:
    """404 with the body of a user id that does not exist, for anyone out of reach."""
    if not await user_within_reach(caller, user_id, node_id):
        raise NotFound("No such user", extra=extra)


async def require_no_more_authority(caller: Caller, user_id: int, node_id: int) -> None:
    """A subordinate never changes a superior's access: the target's permissions at the node
    must be a subset of the caller's, and super-admins are out of everyone else's hands."""
    if caller.is_super_admin or user_id == caller.user_id:
        return
    target_is_super_admin = await queries.active_super_admin(user_id)
    theirs = await decisions_at(
        Caller(user_id, None, bool(target_is_super_admin), caller.via), node_id
    )
    mine = await decisions_at(caller, node_id)
    if theirs is None or mine is None:
        raise NotFound("No such node", extra={"node_id": node_id})
    beyond = sorted(p.value for p, d in theirs.items() if d.granted and not mine[p].granted)
    if target_is_super_admin or beyond:
        raise Forbidden(
            "This person has more authority here than you: you cannot change their access",
            extra={"field": "user_id", "reason": "target_outranks_caller"},
        )
