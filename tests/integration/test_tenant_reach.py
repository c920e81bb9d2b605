"""Issue 11 items 2-4: a caller changes nothing outside what they manage, cannot find people
by guessing ids, and never changes the access of someone with more authority than them.

Each test replays an attack from the issue with the demo's cast: Acme (alice org_admin,
lena location_manager of London, dan department_lead of London/Sales, uma user of
Paris/Analytics) and Globex (vic viewer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from api.platform.db.sql import fetch
from tests.integration.test_hierarchy_api import H, member_at, post
from tests.support.auth import SignedIn, sign_in
from tests.support.data import Tree, assign, make_tree

UNKNOWN_USER = 2_000_000_000


@dataclass
class Cast:
    acme: Tree
    globex: Tree
    alice: SignedIn
    lena: SignedIn
    dan: SignedIn
    uma: SignedIn
    vic: SignedIn

    @property
    def london(self) -> int:
        return self.acme.loc_a


async def cast() -> Cast:
    acme, globex = await make_tree(), await make_tree()
    return Cast(
        acme,
        globex,
        alice=await member_at(acme.org, "org_admin"),
        lena=await member_at(acme.loc_a, "location_manager"),
        dan=await member_at(acme.dept_a1, "department_lead"),
        uma=await member_at(acme.dept_b1, "user"),
        vic=await member_at(globex.org, "viewer"),
    )


def without_request_id(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    body = response.json()
    body.pop("request_id", None)
    return response.status_code, body


async def primaries(user_id: int) -> list[int]:
    rows = await fetch(
        "SELECT node_id FROM user_hierarchy_assignments WHERE user_id = $1 AND is_primary",
        user_id,
    )
    return [row["node_id"] for row in rows]


# ---- item 2: writes stay inside the caller's tenant ----------------------------------------


async def test_a_manager_cannot_assign_someone_from_another_tenant(
    client: httpx.AsyncClient,
) -> None:
    c = await cast()
    attack = await post(
        client,
        c.lena,
        f"{H}/nodes/{c.london}/assignments",
        {"user_id": c.vic.user_id, "role": "viewer", "is_primary": True},
    )
    unknown = await post(
        client,
        c.lena,
        f"{H}/nodes/{c.london}/assignments",
        {"user_id": UNKNOWN_USER, "role": "viewer", "is_primary": True},
    )
    assert without_request_id(attack) == without_request_id(unknown)
    assert attack.status_code == 404
    assert await primaries(c.vic.user_id) == [c.globex.org]
    rows = await fetch("SELECT count(*) AS n FROM user_hierarchy_assignments WHERE user_id = $1",
                       c.vic.user_id)  # fmt: skip
    assert rows[0]["n"] == 1
    listed = await client.get("/api/v1/users/", params={"limit": 500}, cookies=c.lena.cookies)
    assert c.vic.user_id not in {u["id"] for u in listed.json()}


async def test_is_primary_moves_only_where_the_caller_manages_users(
    client: httpx.AsyncClient,
) -> None:
    c = await cast()
    await assign(c.vic.user_id, c.acme.org, "viewer")  # vic also belongs to Acme
    for who in (c.vic, c.uma):  # primaries at Globex and at Paris: outside lena's London
        refused = await post(
            client,
            c.lena,
            f"{H}/nodes/{c.london}/assignments",
            {"user_id": who.user_id, "role": "viewer", "is_primary": True},
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["extra"]["field"] == "is_primary"
    assert await primaries(c.vic.user_id) == [c.globex.org]
    assert await primaries(c.uma.user_id) == [c.acme.dept_b1]
    plain = await post(
        client,
        c.lena,
        f"{H}/nodes/{c.london}/assignments",
        {"user_id": c.uma.user_id, "role": "viewer"},
    )
    assert plain.status_code == 201, plain.text


async def test_clearing_another_primary_is_audited(client: httpx.AsyncClient) -> None:
    c = await cast()
    old = await fetch(
        "SELECT id FROM user_hierarchy_assignments WHERE user_id = $1 AND is_primary",
        c.uma.user_id,
    )
    moved = await post(
        client,
        c.alice,
        f"{H}/nodes/{c.london}/assignments",
        {"user_id": c.uma.user_id, "role": "viewer", "is_primary": True},
    )
    assert moved.status_code == 201, moved.text
    assert await primaries(c.uma.user_id) == [c.london]
    audit = await fetch(
        "SELECT action, actor_id, before, after FROM audit_logs WHERE resource_type ="
        " 'assignment' AND resource_id = $1 AND actor_id IS NOT NULL",
        str(old[0]["id"]),
    )
    assert [(a["action"], a["actor_id"]) for a in audit] == [
        ("assignment.updated", c.alice.user_id)
    ]
    assert '"is_primary": true' in audit[0]["before"]
    assert '"is_primary": false' in audit[0]["after"]


# ---- item 3: people out of reach look like ids that do not exist ----------------------------


async def test_users_out_of_reach_look_like_unknown_ids(client: httpx.AsyncClient) -> None:
    c = await cast()
    admin = await sign_in(super_admin=True)

    async def ask(user_id: int) -> tuple[int, dict[str, Any]]:
        response = await client.get(
            f"/api/v1/users/{user_id}/effective-permissions",
            params={"node_id": c.london},
            cookies=c.lena.cookies,
        )
        body = without_request_id(response)
        body[1].get("extra", {}).pop("user_id", None)
        return body

    nobody = await ask(UNKNOWN_USER)
    assert nobody[0] == 404
    assert await ask(c.vic.user_id) == nobody
    assert await ask(admin.user_id) == nobody  # no "source": "super_admin" leak
    assert (await ask(c.uma.user_id))[0] == 200  # a member of Acme is within reach

    async def override(user_id: int) -> tuple[int, dict[str, Any]]:
        response = await post(
            client,
            c.lena,
            f"{H}/nodes/{c.london}/permission-overrides",
            {"user_id": user_id, "permission": "read", "granted": True, "reason": "probe"},
        )
        return without_request_id(response)

    assert await override(c.vic.user_id) == await override(UNKNOWN_USER)
    assert (await override(admin.user_id))[0] == 404


# ---- item 4: subordinates never change a superior's access ----------------------------------


async def test_a_subordinate_cannot_revoke_a_superiors_permission(
    client: httpx.AsyncClient,
) -> None:
    c = await cast()
    attack = await post(
        client,
        c.lena,
        f"{H}/nodes/{c.london}/permission-overrides",
        {"user_id": c.alice.user_id, "permission": "read", "granted": False, "reason": "x"},
    )
    assert attack.status_code == 403, attack.text
    assert attack.json()["extra"]["reason"] == "target_outranks_caller"
    seen = await client.get(f"{H}/nodes/{c.london}", cookies=c.alice.cookies)
    assert seen.status_code == 200
    allowed = await post(
        client,
        c.lena,
        f"{H}/nodes/{c.london}/permission-overrides",
        {"user_id": c.dan.user_id, "permission": "write", "granted": False, "reason": "freeze"},
    )
    assert allowed.status_code == 201, allowed.text


async def test_super_admins_are_never_targets_of_others(client: httpx.AsyncClient) -> None:
    c = await cast()
    admin = await sign_in(super_admin=True)
    await assign(admin.user_id, c.acme.org, "viewer")  # within reach, yet out of hand
    for who in (c.alice, c.lena):
        attack = await post(
            client,
            who,
            f"{H}/nodes/{c.london}/permission-overrides",
            {"user_id": admin.user_id, "permission": "read", "granted": False, "reason": "x"},
        )
        assert attack.status_code == 403, attack.text


async def test_a_subordinate_cannot_demote_or_remove_a_superiors_assignment(
    client: httpx.AsyncClient,
) -> None:
    c = await cast()
    await assign(c.alice.user_id, c.london, "viewer", primary=False)
    rows = await fetch(
        "SELECT id FROM user_hierarchy_assignments WHERE user_id = $1 AND node_id = $2",
        c.alice.user_id,
        c.london,
    )
    assignment = rows[0]["id"]
    for change in ({"is_active": False}, {"role": "user"}):
        refused = await client.patch(
            f"{H}/assignments/{assignment}",
            json=change,
            cookies=c.lena.cookies,
            headers=c.lena.headers(),
        )
        assert refused.status_code == 403, refused.text
    removed = await client.delete(
        f"{H}/assignments/{assignment}", cookies=c.lena.cookies, headers=c.lena.headers()
    )
    assert removed.status_code == 403
    still = await fetch(
        "SELECT role, is_active FROM user_hierarchy_assignments WHERE id = $1", assignment
    )
    assert (still[0]["role"], still[0]["is_active"]) == ("viewer", True)


async def test_a_subordinate_cannot_lift_a_superiors_override(client: httpx.AsyncClient) -> None:
    c = await cast()
    frozen = await post(
        client,
        c.alice,
        f"{H}/nodes/{c.london}/permission-overrides",
        {"user_id": c.lena.user_id, "permission": "write", "granted": False, "reason": "audit"},
    )
    assert frozen.status_code == 201, frozen.text
    own = await client.delete(
        f"{H}/permission-overrides/{frozen.json()['id']}",
        cookies=c.lena.cookies,
        headers=c.lena.headers(),
    )
    assert own.status_code == 403  # lena lacks `write` there now: she cannot hand it back


# ---- item 10: members see only what they may read -------------------------------------------


async def test_organization_settings_reach_only_those_who_may_read_the_org(
    client: httpx.AsyncClient,
) -> None:
    c = await cast()
    await fetch(
        'UPDATE organization_hierarchy SET settings = \'{"secret": "s3"}\'::jsonb,'
        " email_domains = ARRAY['acme-internal.test']::varchar[] WHERE id = $1",
        c.acme.org,
    )
    assert (await client.get(f"{H}/nodes/{c.acme.org}", cookies=c.lena.cookies)).status_code == 404
    listed = await client.get(f"{H}/organizations", cookies=c.lena.cookies)
    assert listed.json() == [
        {"id": c.acme.org, "name": listed.json()[0]["name"], "slug": listed.json()[0]["slug"]}
    ]
    assert "s3" not in listed.text
    assert "acme-internal" not in listed.text
    full = await client.get(f"{H}/organizations", cookies=c.alice.cookies)
    assert full.json()[0]["settings"] == {"secret": "s3"}
