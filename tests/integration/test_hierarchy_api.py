"""The hierarchy over HTTP: tenants isolated, no escalation, consistent moves, audited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from api.hierarchy.access import check_permission
from api.platform.db.sql import engine, fetch
from tables.enums import Permission
from tests.support.auth import SignedIn, make_user, sign_in
from tests.support.data import assign, make_tree, unique

H = "/api/v1/hierarchy"


async def post(
    client: httpx.AsyncClient, who: SignedIn, path: str, body: dict[str, object]
) -> httpx.Response:
    return await client.post(path, json=body, cookies=who.cookies, headers=who.headers())


async def newcomer(org: int) -> int:
    """A user provisioned into `org` (a viewer there), so its managers may reach them."""
    user = await make_user()
    await assign(user, org, "viewer")
    return user


async def member_at(node: int, role: str, *, primary: bool = True) -> SignedIn:
    who = await sign_in()
    await assign(who.user_id, node, role, primary=primary)
    return who


# ---- the loader agrees with the pure rule ------------------------------------------------


async def test_loader_applies_roles_overrides_and_expiry() -> None:
    tree = await make_tree()
    user = await make_user()
    await assign(user, tree.loc_a, "department_lead")
    assert (
        await check_permission(user, tree.dept_a1, Permission.write, is_super_admin=False)
    ).granted
    assert not (
        await check_permission(user, tree.dept_b1, Permission.read, is_super_admin=False)
    ).granted
    assert not (
        await check_permission(user, tree.org, Permission.read, is_super_admin=False)
    ).granted
    await fetch(
        "INSERT INTO hierarchy_permission_overrides (user_id, node_id, permission, granted, reason, expires_at)"
        " VALUES ($1, $2, 'write', false, 'freeze', now() + interval '1 hour'),"
        " ($1, $3, 'export_data', true, 'expired', now() - interval '1 minute')",
        user,
        tree.dept_a1,
        tree.loc_a,
    )
    write = await check_permission(user, tree.dept_a1, Permission.write, is_super_admin=False)
    assert (write.granted, write.source) == (False, "override")
    assert (
        await check_permission(user, tree.dept_a2, Permission.write, is_super_admin=False)
    ).granted
    assert not (
        await check_permission(user, tree.dept_a1, Permission.export_data, is_super_admin=False)
    ).granted
    assert (
        await check_permission(user, 2_000_000_000, Permission.read, is_super_admin=False) is None
    )


# ---- organizations -----------------------------------------------------------------------


async def test_only_super_admins_create_organizations(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    body = {"name": "Shiny", "slug": unique("shiny"), "email_domains": [f"{unique('d')}.example"]}
    assert (await post(client, org_admin, f"{H}/organizations", body)).status_code == 403
    admin = await sign_in(super_admin=True)
    created = await post(client, admin, f"{H}/organizations", body)
    assert created.status_code == 201, created.text
    assert created.json()["level"] == "organization"
    clash = await post(client, admin, f"{H}/organizations", {**body, "slug": unique("other")})
    assert clash.status_code == 409
    assert clash.json()["extra"]["field"] == "email_domains"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "slug": "ok"}, "name"),
        ({"name": "X", "slug": "Not Slug"}, "slug"),
        ({"name": "X", "slug": "ok", "email_domains": ["not a domain"]}, "email_domains"),
    ],
)
async def test_validation_errors_name_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    admin = await sign_in(super_admin=True)
    response = await post(client, admin, f"{H}/organizations", body)
    assert response.status_code == 422
    assert response.json()["extra"]["field"] == field


# ---- nodes -------------------------------------------------------------------------------


async def test_nesting_is_enforced(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    location = await post(
        client,
        org_admin,
        f"{H}/nodes/{tree.org}/children",
        {"name": "Rome", "slug": unique("rome")},
    )
    assert location.json()["level"] == "location"
    department = await post(
        client,
        org_admin,
        f"{H}/nodes/{location.json()['id']}/children",
        {"name": "Ops", "slug": "ops"},
    )
    assert department.json()["level"] == "department"
    leaf = await post(
        client,
        org_admin,
        f"{H}/nodes/{department.json()['id']}/children",
        {"name": "No", "slug": "no"},
    )
    assert leaf.status_code == 422
    assert leaf.json()["extra"]["field"] == "parent_id"
    duplicate = await post(
        client,
        org_admin,
        f"{H}/nodes/{location.json()['id']}/children",
        {"name": "Ops", "slug": "ops"},
    )
    assert duplicate.status_code == 409


async def test_moves_rewrite_the_subtree_and_refuse_cycles_and_bad_levels(
    client: httpx.AsyncClient,
) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    moved = await post(
        client, org_admin, f"{H}/nodes/{tree.dept_a1}/move", {"parent_id": tree.loc_b}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["path"] == [tree.org, tree.loc_b, tree.dept_a1]
    location_under_location = await post(
        client, org_admin, f"{H}/nodes/{tree.loc_a}/move", {"parent_id": tree.loc_b}
    )
    assert location_under_location.status_code == 422
    into_itself = await post(
        client, org_admin, f"{H}/nodes/{tree.loc_a}/move", {"parent_id": tree.dept_a2}
    )
    assert into_itself.status_code == 422


async def test_moving_a_location_carries_its_departments(client: httpx.AsyncClient) -> None:
    first, second = await make_tree(), await make_tree()
    admin = await sign_in(super_admin=True)
    response = await post(client, admin, f"{H}/nodes/{first.loc_a}/move", {"parent_id": second.org})
    assert response.status_code == 200
    rows = await fetch(
        "SELECT path FROM organization_hierarchy WHERE id = ANY($1::int[]) ORDER BY id",
        [first.dept_a1, first.dept_a2],
    )
    assert [list(r["path"]) for r in rows] == [
        [second.org, first.loc_a, first.dept_a1],
        [second.org, first.loc_a, first.dept_a2],
    ]


async def test_only_super_admins_move_nodes_between_tenants(client: httpx.AsyncClient) -> None:
    first, second = await make_tree(), await make_tree()
    both = await member_at(first.org, "org_admin")
    await assign(both.user_id, second.org, "org_admin")
    response = await post(client, both, f"{H}/nodes/{first.loc_a}/move", {"parent_id": second.org})
    assert response.status_code == 403


async def test_two_concurrent_moves_in_one_subtree_leave_a_consistent_tree() -> None:
    """Two connections race to move A under B and B under A: one wins, no cycle, paths agree."""
    for _ in range(5):
        tree = await make_tree()
        org_admin = await make_user()
        await assign(org_admin, tree.org, "org_admin")
        from api.auth.identity import Caller
        from api.hierarchy.service import move_node

        caller = Caller(org_admin, None, False, "session")

        async def move(node: int, parent: int, caller: Caller = caller) -> str:
            try:
                await move_node(None, caller, node, parent)  # type: ignore[arg-type]
                return "moved"
            except Exception as exc:
                return type(exc).__name__

        outcomes = await asyncio.gather(
            move(tree.dept_a1, tree.loc_b), move(tree.dept_a1, tree.loc_a)
        )
        assert "moved" in outcomes
        rows = await fetch(
            "SELECT n.id, n.path, p.path AS parent_path FROM organization_hierarchy n"
            " JOIN organization_hierarchy p ON p.id = n.parent_id WHERE n.path[1] = $1",
            tree.org,
        )
        for row in rows:
            assert list(row["path"]) == [*row["parent_path"], row["id"]]
            assert len(set(row["path"])) == len(row["path"])


async def test_deactivate_and_rename_need_manage_settings(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    lead = await member_at(tree.dept_a1, "department_lead")
    assert (
        await client.patch(
            f"{H}/nodes/{tree.dept_a1}",
            json={"name": "X"},
            cookies=lead.cookies,
            headers=lead.headers(),
        )
    ).status_code == 403
    org_admin = await member_at(tree.org, "org_admin")
    renamed = await client.patch(
        f"{H}/nodes/{tree.dept_a1}",
        json={"name": "Renamed"},
        cookies=org_admin.cookies,
        headers=org_admin.headers(),
    )
    assert renamed.json()["name"] == "Renamed"
    off = await post(client, org_admin, f"{H}/nodes/{tree.dept_a1}/deactivate", {})
    assert off.json()["is_active"] is False
    audit = await fetch(
        "SELECT action, before, after FROM audit_logs WHERE resource_type = 'node' AND resource_id = $1"
        " AND actor_id = $2 ORDER BY id",
        str(tree.dept_a1),
        org_admin.user_id,
    )
    assert [a["action"] for a in audit] == ["node.updated", "node.updated"]
    assert '"Renamed"' in audit[0]["after"]


# ---- escalation --------------------------------------------------------------------------


async def test_org_admin_cannot_grant_org_admin_above_their_node(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    location_admin = await member_at(tree.loc_a, "org_admin")
    target = await newcomer(tree.org)
    above = await post(
        client,
        location_admin,
        f"{H}/nodes/{tree.org}/assignments",
        {"user_id": target, "role": "org_admin"},
    )
    assert above.status_code == 404  # the organization node is outside their reach
    below = await post(
        client,
        location_admin,
        f"{H}/nodes/{tree.dept_a1}/assignments",
        {"user_id": target, "role": "org_admin"},
    )
    assert below.status_code == 201


async def test_location_manager_cannot_grant_admin(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    manager = await member_at(tree.loc_a, "location_manager")
    target = await newcomer(tree.org)
    override = await post(
        client, manager, f"{H}/nodes/{tree.dept_a1}/permission-overrides",
        {"user_id": target, "permission": "admin", "granted": True, "reason": "please"},
    )  # fmt: skip
    assert override.status_code == 403
    role = await post(
        client,
        manager,
        f"{H}/nodes/{tree.dept_a1}/assignments",
        {"user_id": target, "role": "org_admin"},
    )
    assert role.status_code == 403
    assert "admin" in role.json()["extra"]["missing"]
    allowed = await post(
        client,
        manager,
        f"{H}/nodes/{tree.dept_a1}/assignments",
        {"user_id": target, "role": "department_lead"},
    )
    assert allowed.status_code == 201


async def test_only_super_admins_grant_super_admin(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    target = await make_user()
    refused = await client.patch(
        f"/api/v1/users/{target}",
        json={"is_super_admin": True},
        cookies=org_admin.cookies,
        headers=org_admin.headers(),
    )
    assert refused.status_code == 403
    admin = await sign_in(super_admin=True)
    granted = await client.patch(
        f"/api/v1/users/{target}",
        json={"is_super_admin": True},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert granted.json()["is_super_admin"] is True


async def test_deactivating_a_user_ends_their_sessions(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    victim = await sign_in()
    response = await client.patch(
        f"/api/v1/users/{victim.user_id}",
        json={"is_active": False},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert response.status_code == 200
    assert (
        await client.get("/api/v1/auth/session/check", cookies=victim.cookies)
    ).status_code == 401


# ---- tenants -----------------------------------------------------------------------------


async def test_cross_tenant_attempts_are_404(client: httpx.AsyncClient) -> None:
    mine, theirs = await make_tree(), await make_tree()
    org_admin = await member_at(mine.org, "org_admin")
    target = await make_user()
    attempts = [
        await client.get(f"{H}/nodes/{theirs.org}", cookies=org_admin.cookies),
        await client.get(f"{H}/nodes/{theirs.loc_a}/children", cookies=org_admin.cookies),
        await post(client, org_admin, f"{H}/nodes/{theirs.loc_a}/move", {"parent_id": mine.org}),
        await post(client, org_admin, f"{H}/nodes/{mine.loc_a}/move", {"parent_id": theirs.org}),
        await post(
            client,
            org_admin,
            f"{H}/nodes/{theirs.org}/assignments",
            {"user_id": target, "role": "viewer"},
        ),
        await post(
            client,
            org_admin,
            f"{H}/nodes/{theirs.org}/permission-overrides",
            {"user_id": target, "permission": "read", "granted": True, "reason": "x"},
        ),
        await client.get(
            f"/api/v1/users/{target}/effective-permissions",
            params={"node_id": theirs.org},
            cookies=org_admin.cookies,
        ),
        await client.get(f"{H}/nodes/2000000000", cookies=org_admin.cookies),
    ]
    assert [a.status_code for a in attempts] == [404] * len(attempts)
    listed = await client.get(f"{H}/organizations", cookies=org_admin.cookies)
    assert [o["id"] for o in listed.json()] == [mine.org]


# ---- overrides, effective permissions, /me ------------------------------------------------


async def test_effective_permissions_report_their_reasons(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    member = await member_at(tree.loc_a, "user")
    revoke = await post(
        client, org_admin, f"{H}/nodes/{tree.dept_a1}/permission-overrides",
        {"user_id": member.user_id, "permission": "view_reports", "granted": False, "reason": "audit",
         "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
    )  # fmt: skip
    assert revoke.status_code == 201, revoke.text
    response = await client.get(
        f"/api/v1/users/{member.user_id}/effective-permissions",
        params={"node_id": tree.dept_a1},
        cookies=org_admin.cookies,
    )
    reasons = {p["permission"]: p for p in response.json()["permissions"]}
    assert reasons["read"] == {
        "permission": "read",
        "granted": True,
        "source": "role",
        "node_id": tree.loc_a,
        "role": "user",
    }
    assert reasons["view_reports"]["source"] == "override"
    assert reasons["view_reports"]["granted"] is False
    assert reasons["write"]["granted"] is False
    own = await client.get(
        f"/api/v1/users/{member.user_id}/effective-permissions",
        params={"node_id": tree.loc_a},
        cookies=member.cookies,
    )
    assert own.status_code == 200


async def test_me_lists_organizations_assignments_and_permissions(
    client: httpx.AsyncClient,
) -> None:
    tree = await make_tree()
    member = await member_at(tree.loc_b, "location_manager")
    await assign(member.user_id, tree.dept_a2, "viewer", primary=False)
    response = await client.get("/api/v1/auth/me", cookies=member.cookies)
    assert response.status_code == 200
    body = response.json()
    assert [o["id"] for o in body["organizations"]] == [tree.org]
    by_node = {a["node_id"]: a for a in body["assignments"]}
    assert by_node[tree.loc_b]["effective_permissions"] == [
        "manage_users",
        "read",
        "view_reports",
        "write",
    ]
    assert by_node[tree.dept_a2]["effective_permissions"] == ["read"]
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_users_list_shows_only_reachable_people(client: httpx.AsyncClient) -> None:
    mine, theirs = await make_tree(), await make_tree()
    manager = await member_at(mine.loc_a, "location_manager")
    colleague = await member_at(mine.dept_a1, "user")
    stranger = await member_at(theirs.loc_a, "user")
    listed = await client.get("/api/v1/users", params={"limit": 500}, cookies=manager.cookies)
    ids = {u["id"] for u in listed.json()}
    assert {manager.user_id, colleague.user_id} <= ids
    assert stranger.user_id not in ids


async def test_assignment_changes_are_audited_with_before_and_after(
    client: httpx.AsyncClient,
) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    target = await newcomer(tree.org)
    created = await post(
        client,
        org_admin,
        f"{H}/nodes/{tree.loc_a}/assignments",
        {"user_id": target, "role": "viewer"},
    )
    assignment_id = created.json()["id"]
    changed = await client.patch(
        f"{H}/assignments/{assignment_id}",
        json={"role": "user"},
        cookies=org_admin.cookies,
        headers=org_admin.headers(),
    )
    assert changed.json()["role"] == "user"
    removed = await client.delete(
        f"{H}/assignments/{assignment_id}", cookies=org_admin.cookies, headers=org_admin.headers()
    )
    assert removed.status_code == 204
    audit = await fetch(
        "SELECT action, actor_id, before, after FROM audit_logs WHERE resource_type = 'assignment' AND resource_id = $1 ORDER BY id",
        str(assignment_id),
    )
    assert [a["action"] for a in audit] == [
        "assignment.created",
        "assignment.updated",
        "assignment.deleted",
    ]
    assert {a["actor_id"] for a in audit} == {org_admin.user_id}
    assert '"viewer"' in audit[1]["before"]
    assert '"user"' in audit[1]["after"]


async def test_primary_assignment_is_unique_per_user(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    target = await newcomer(tree.org)
    for node in (tree.loc_a, tree.loc_b):
        response = await post(
            client,
            org_admin,
            f"{H}/nodes/{node}/assignments",
            {"user_id": target, "role": "viewer", "is_primary": True},
        )
        assert response.status_code == 201
    rows = await fetch(
        "SELECT node_id FROM user_hierarchy_assignments WHERE user_id = $1 AND is_primary", target
    )
    assert [r["node_id"] for r in rows] == [tree.loc_b]
    with pytest.raises(asyncpg.UniqueViolationError):
        async with engine().transaction():
            await fetch(
                "UPDATE user_hierarchy_assignments SET is_primary = true WHERE user_id = $1", target
            )


async def test_the_is_primary_side_effect_on_other_assignments_is_audited(
    client: httpx.AsyncClient,
) -> None:
    """Issue 11 #8: making one assignment primary un-primaries another row: both audited."""
    tree = await make_tree()
    admin = await sign_in(super_admin=True)
    target = await make_user()
    await assign(target, tree.loc_a, "viewer", primary=True)
    await assign(target, tree.loc_b, "viewer")
    ids = {
        r["node_id"]: r["id"]
        for r in await fetch(
            "SELECT id, node_id FROM user_hierarchy_assignments WHERE user_id = $1", target
        )
    }
    changed = await client.patch(
        f"{H}/assignments/{ids[tree.loc_b]}",
        json={"is_primary": True},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert changed.status_code == 200, changed.text
    side_effect = await fetch(
        "SELECT action, actor_id, before, after FROM audit_logs WHERE resource_type = 'assignment'"
        " AND resource_id = $1 AND action = 'assignment.updated'",
        str(ids[tree.loc_a]),
    )
    assert len(side_effect) == 1
    assert side_effect[0]["actor_id"] == admin.user_id
    assert '"is_primary": false' in side_effect[0]["after"]
    explicit = await fetch(
        "SELECT action FROM audit_logs WHERE resource_type = 'assignment' AND resource_id = $1"
        " ORDER BY id",
        str(ids[tree.loc_b]),
    )
    assert [r["action"] for r in explicit] == ["assignment.insert", "assignment.updated"]
