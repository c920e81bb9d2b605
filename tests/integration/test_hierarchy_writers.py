"""Issue 18 and 19 for the hierarchy: both writers (REST and Piccolo Admin) give the same
answer with the same sentence, the database holds the invariants for any writer, grants
are scoped to the authority they rest on, and managed settings stay the platform's.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from api.hierarchy.access import check_permission
from api.platform.db.sql import fetch
from api.platform.http.errors import STALE_SAVE
from tables.enums import Permission
from tests.integration.test_hierarchy_api import H, member_at, newcomer
from tests.support.auth import SignedIn, sign_in
from tests.support.data import make_tree, unique

ORIGIN = "http://127.0.0.1:8000"
DOMAIN_TAKEN = "An e-mail domain is claimed by another organization"


def admin_headers(who: SignedIn) -> dict[str, str]:
    return {"X-CSRFToken": who.csrf_token, "Origin": ORIGIN, "Referer": f"{ORIGIN}/admin/"}


def admin_cookies(who: SignedIn) -> dict[str, str]:
    return {**who.cookies, "csrftoken": who.csrf_token}


async def admin_patch(
    client: httpx.AsyncClient, who: SignedIn, table: str, row: int, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(
        f"/admin/api/tables/{table}/{row}/",
        json=body,
        cookies=admin_cookies(who),
        headers=admin_headers(who),
    )


async def admin_post(
    client: httpx.AsyncClient, who: SignedIn, table: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/admin/api/tables/{table}/",
        json=body,
        cookies=admin_cookies(who),
        headers=admin_headers(who),
    )


async def rest(
    client: httpx.AsyncClient, who: SignedIn, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, path, json=body, cookies=who.cookies, headers=who.headers())


def admin_error(answer: httpx.Response) -> tuple[str, str]:
    first = answer.json()["detail"][0]
    return first["loc"][-1], first["msg"]


async def version_of(table: str, row: int) -> int:
    rows = await fetch(f"SELECT version FROM {table} WHERE id = $1", row)
    return int(rows[0]["version"])


async def audit_count(resource_type: str, row: int) -> int:
    rows = await fetch(
        "SELECT count(*) AS n FROM audit_logs WHERE resource_type = $1 AND resource_id = $2",
        resource_type,
        str(row),
    )
    return int(rows[0]["n"])


# ---- the attacks through both writers -------------------------------------------------------


async def test_a_domain_another_organization_claims_is_409_through_both_writers(
    client: httpx.AsyncClient,
) -> None:
    root = await sign_in(super_admin=True)
    acme, globex = await make_tree(), await make_tree()
    domain = f"{unique('acme')}.example"
    claimed = await rest(
        client, root, "PATCH", f"{H}/nodes/{acme.org}", {"email_domains": [domain]}
    )
    assert claimed.status_code == 200, claimed.text
    by_rest = await rest(
        client, root, "PATCH", f"{H}/nodes/{globex.org}", {"email_domains": [domain]}
    )
    assert by_rest.status_code == 409
    assert by_rest.json()["detail"] == DOMAIN_TAKEN
    version = await version_of("organization_hierarchy", globex.org)
    by_admin = await admin_patch(
        client,
        root,
        "organization_hierarchy",
        globex.org,
        {"email_domains": [domain], "version": version},
    )
    assert by_admin.status_code == 409, by_admin.text
    assert admin_error(by_admin) == ("Email Domains", DOMAIN_TAKEN)
    rows = await fetch("SELECT email_domains FROM organization_hierarchy WHERE id = $1", globex.org)
    assert list(rows[0]["email_domains"]) == []


@pytest.mark.parametrize(
    ("settings", "sentence"),
    [
        ({"blob": "x" * 600_000}, "settings may take at most 16384 bytes as JSON"),
        ([1, 2, 3], "settings must be a JSON object"),
        ("[" * 3000 + "]" * 3000, None),
    ],
    ids=["600-KB", "array", "3000-deep"],
)
async def test_bad_settings_are_a_4xx_through_both_writers(
    client: httpx.AsyncClient, settings: Any, sentence: str | None
) -> None:
    root = await sign_in(super_admin=True)
    tree = await make_tree()
    if sentence is not None:
        by_rest = await rest(
            client, root, "PATCH", f"{H}/nodes/{tree.loc_a}", {"settings": settings}
        )
        assert 400 <= by_rest.status_code < 500, by_rest.text
    version = await version_of("organization_hierarchy", tree.loc_a)
    text = settings if isinstance(settings, str) else json.dumps(settings)
    by_admin = await admin_patch(
        client,
        root,
        "organization_hierarchy",
        tree.loc_a,
        {"settings": text, "version": version},
    )
    assert 400 <= by_admin.status_code < 500, by_admin.text
    field, message = admin_error(by_admin)
    assert field == "Settings"
    if sentence is not None:
        assert message == sentence.removeprefix("settings ")
    rows = await fetch("SELECT settings FROM organization_hierarchy WHERE id = $1", tree.loc_a)
    assert rows[0]["settings"] is None


async def test_an_admin_save_needs_the_current_version(client: httpx.AsyncClient) -> None:
    root = await sign_in(super_admin=True)
    tree = await make_tree()
    for body in ({"name": "No version"}, {"name": "Old version", "version": 0}):
        answer = await admin_patch(client, root, "organization_hierarchy", tree.loc_a, body)
        assert answer.status_code == 409, answer.text
        assert admin_error(answer) == ("Version", STALE_SAVE)
    saved = await admin_patch(
        client, root, "organization_hierarchy", tree.loc_a, {"name": "Renamed", "version": 1}
    )
    assert saved.status_code == 200, saved.text
    assert await version_of("organization_hierarchy", tree.loc_a) == 2
    stale = await rest(
        client, root, "PATCH", f"{H}/nodes/{tree.loc_a}", {"name": "Again", "version": 1}
    )
    assert stale.status_code == 409
    assert stale.json()["detail"] == STALE_SAVE


async def test_a_save_that_changes_nothing_writes_nothing(client: httpx.AsyncClient) -> None:
    root = await sign_in(super_admin=True)
    granter = await sign_in(super_admin=True)
    tree = await make_tree()
    person = await newcomer(tree.org)
    made = await rest(
        client, granter, "POST", f"{H}/nodes/{tree.loc_a}/assignments",
        {"user_id": person, "role": "user"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assignment = made.json()["id"]
    for table, row, kind in (
        ("organization_hierarchy", tree.loc_a, "node"),
        ("user_hierarchy_assignments", assignment, "assignment"),
        ("users", person, "user"),
    ):
        whole = (
            await client.get(
                f"/admin/api/tables/{table}/{row}/",
                cookies=admin_cookies(root),
                headers=admin_headers(root),
            )
        ).json()
        audits, version = await audit_count(kind, row), await version_of(table, row)
        before = (await fetch(f"SELECT * FROM {table} WHERE id = $1", row))[0]
        saved = await admin_patch(client, root, table, row, whole)
        assert saved.status_code == 200, (table, saved.text)
        after = (await fetch(f"SELECT * FROM {table} WHERE id = $1", row))[0]
        assert dict(after) == dict(before), table
        assert await version_of(table, row) == version
        assert await audit_count(kind, row) == audits, table
    rows = await fetch(
        "SELECT granted_by_id FROM user_hierarchy_assignments WHERE id = $1", assignment
    )
    assert rows[0]["granted_by_id"] == granter.user_id


async def test_an_admin_role_change_goes_through_the_service(client: httpx.AsyncClient) -> None:
    root = await sign_in(super_admin=True)
    tree = await make_tree()
    person = await newcomer(tree.org)
    made = await admin_post(
        client,
        root,
        "user_hierarchy_assignments",
        {"user_id": person, "node_id": tree.loc_a, "role": "user", "is_primary": False},
    )
    assert made.status_code == 201, made.text
    row = (await fetch(
        "SELECT id, version FROM user_hierarchy_assignments WHERE user_id = $1 AND node_id = $2",
        person, tree.loc_a,
    ))[0]  # fmt: skip
    bad = await admin_patch(
        client, root, "user_hierarchy_assignments", row["id"], {"role": "emperor", "version": 1}
    )
    assert bad.status_code == 422, bad.text
    assert admin_error(bad)[0] == "Role"
    good = await admin_patch(
        client, root, "user_hierarchy_assignments", row["id"], {"role": "viewer", "version": 1}
    )
    assert good.status_code == 200, good.text
    audited = await fetch(
        "SELECT actor_id FROM audit_logs WHERE action = 'assignment.updated' AND resource_id = $1",
        str(row["id"]),
    )
    assert [a["actor_id"] for a in audited] == [root.user_id]


# ---- the database keeps the invariants for any writer ---------------------------------------


async def test_a_psql_session_cannot_break_the_hierarchy_invariants(database: str) -> None:
    acme, globex = await make_tree(), await make_tree()
    domain = f"{unique('db')}.example"
    connection = await asyncpg.connect(database)
    try:
        await connection.execute(
            "UPDATE organization_hierarchy SET email_domains = $1 WHERE id = $2", [domain], acme.org
        )
        with pytest.raises(asyncpg.UniqueViolationError) as taken:
            await connection.execute(
                "UPDATE organization_hierarchy SET email_domains = $1 WHERE id = $2",
                [domain, "other.example"],
                globex.org,
            )
        assert taken.value.constraint_name == "organization_domains_unique"
        for settings, constraint in (
            ("[1, 2]", "hierarchy_settings_object"),
            ('"text"', "hierarchy_settings_object"),
            (json.dumps({"blob": "x" * 40_000}), "hierarchy_settings_size"),
        ):
            with pytest.raises(asyncpg.CheckViolationError) as refused:
                await connection.execute(
                    "UPDATE organization_hierarchy SET settings = $1::jsonb WHERE id = $2",
                    settings,
                    acme.loc_a,
                )
            assert refused.value.constraint_name == constraint
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                "UPDATE organization_hierarchy SET managed_settings = '{plan}' WHERE id = $1",
                acme.loc_a,
            )
        version = await connection.fetchval(
            "SELECT version FROM organization_hierarchy WHERE id = $1", acme.loc_a
        )
        await connection.execute(
            "UPDATE organization_hierarchy SET id = id WHERE id = $1", acme.loc_a
        )
        assert (
            await connection.fetchval(
                "SELECT version FROM organization_hierarchy WHERE id = $1", acme.loc_a
            )
            == version
        )
        await connection.execute(
            "UPDATE organization_hierarchy SET name = 'Renamed' WHERE id = $1", acme.loc_a
        )
        assert (
            await connection.fetchval(
                "SELECT version FROM organization_hierarchy WHERE id = $1", acme.loc_a
            )
            == version + 1
        )
    finally:
        await connection.close()


# ---- delegation is scoped (issue 19 #4) -----------------------------------------------------


async def grant(
    client: httpx.AsyncClient,
    who: SignedIn,
    node: int,
    user_id: int,
    permission: str,
    expires_at: datetime | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {
        "user_id": user_id, "permission": permission, "granted": True, "reason": "delegated",
    }  # fmt: skip
    if expires_at is not None:
        body["expires_at"] = expires_at.isoformat()
    return await rest(client, who, "POST", f"{H}/nodes/{node}/permission-overrides", body)


@pytest.mark.parametrize("source", ["permanent", "temporary"])
@pytest.mark.parametrize("target", ["self", "other"])
@pytest.mark.parametrize("expiry", ["none", "within", "longer"])
async def test_the_delegation_matrix(
    client: httpx.AsyncClient, source: str, target: str, expiry: str
) -> None:
    """Lena (location_manager of London) holds manage_settings there, for good or for an
    hour, and hands it on, to herself or to a viewer, for ever, for 30 min or for 2 h."""
    root = await sign_in(super_admin=True)
    tree = await make_tree()
    lena = await member_at(tree.loc_a, "location_manager")
    now = datetime.now(UTC)
    source_ends = now + timedelta(hours=1) if source == "temporary" else None
    given = await grant(client, root, tree.loc_a, lena.user_id, "manage_settings", source_ends)
    assert given.status_code == 201, given.text
    someone = lena.user_id if target == "self" else await newcomer(tree.org)
    ends = {"none": None, "within": now + timedelta(minutes=30), "longer": now + timedelta(hours=2)}
    answer = await grant(client, lena, tree.dept_a1, someone, "manage_settings", ends[expiry])
    if target == "self":
        expected = 403
    elif source == "permanent" or expiry == "within":
        expected = 201
    else:
        expected = 403
    assert answer.status_code == expected, answer.text
    if expected == 201:
        assert answer.json()["derived_from"] == [given.json()["id"]]
    elif target == "self":
        assert answer.json()["detail"].startswith("You cannot grant yourself")
    else:
        assert "the grant must expire by then" in answer.json()["detail"]


async def test_a_temporary_grant_never_becomes_permanent(client: httpx.AsyncClient) -> None:
    """The attack: Lena got manage_settings at London for a few seconds, and handed it on."""
    root = await sign_in(super_admin=True)
    tree = await make_tree()
    lena = await member_at(tree.loc_a, "location_manager")
    viewer = await newcomer(tree.org)
    ends = datetime.now(UTC) + timedelta(seconds=3)
    given = await grant(client, root, tree.loc_a, lena.user_id, "manage_settings", ends)
    assert given.status_code == 201, given.text
    assert (
        await grant(client, lena, tree.dept_a1, lena.user_id, "manage_settings")
    ).status_code == 403
    assert (await grant(client, lena, tree.loc_a, viewer, "manage_settings")).status_code == 403
    handed = await grant(client, lena, tree.loc_a, viewer, "manage_settings", ends)
    assert handed.status_code == 201, handed.text
    role = await rest(
        client, lena, "POST", f"{H}/nodes/{tree.dept_a2}/assignments",
        {"user_id": viewer, "role": "org_admin"},
    )  # fmt: skip
    assert role.status_code == 403
    assert await held(viewer, tree.loc_a, Permission.manage_settings)
    await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.3)
    assert not await held(lena.user_id, tree.loc_a, Permission.manage_settings)
    assert not await held(viewer, tree.loc_a, Permission.manage_settings)


async def held(user_id: int, node: int, permission: Permission) -> bool:
    decision = await check_permission(user_id, node, permission, is_super_admin=False)
    return decision is not None and decision.granted


async def test_a_role_resting_on_a_temporary_permission_is_refused(
    client: httpx.AsyncClient,
) -> None:
    root = await sign_in(super_admin=True)
    tree = await make_tree()
    helper = await member_at(tree.loc_a, "user")
    viewer = await newcomer(tree.org)
    ends = datetime.now(UTC) + timedelta(hours=1)
    assert (
        await grant(client, root, tree.loc_a, helper.user_id, "manage_users", ends)
    ).status_code == 201
    role = await rest(
        client, helper, "POST", f"{H}/nodes/{tree.dept_a1}/assignments",
        {"user_id": viewer, "role": "viewer"},
    )  # fmt: skip
    assert role.status_code == 403, role.text
    assert "a role does not expire" in role.json()["detail"]


async def test_revoking_a_grant_ends_what_was_derived_from_it(client: httpx.AsyncClient) -> None:
    alice = await sign_in(super_admin=True)
    tree = await make_tree()
    helper = await member_at(tree.loc_a, "user")
    viewer, other = await newcomer(tree.org), await newcomer(tree.org)
    source = await grant(client, alice, tree.loc_a, helper.user_id, "manage_users")
    assert source.status_code == 201, source.text
    role = await rest(
        client, helper, "POST", f"{H}/nodes/{tree.dept_a1}/assignments",
        {"user_id": viewer, "role": "viewer"},
    )  # fmt: skip
    assert role.status_code == 201, role.text
    assert role.json()["derived_from"] == [source.json()["id"]]
    handed = await grant(client, helper, tree.dept_a1, other, "view_reports")
    assert handed.status_code == 201, handed.text
    gone = await rest(
        client, alice, "DELETE", f"/api/v1/hierarchy/permission-overrides/{source.json()['id']}"
    )
    assert gone.status_code in (200, 204), gone.text
    assert (
        await fetch("SELECT 1 FROM user_hierarchy_assignments WHERE id = $1", role.json()["id"])
        == []
    )
    assert (
        await fetch(
            "SELECT 1 FROM hierarchy_permission_overrides WHERE id = $1", handed.json()["id"]
        )
        == []
    )


async def test_shortening_a_grant_shortens_what_was_derived_from_it(
    client: httpx.AsyncClient,
) -> None:
    root = await sign_in(super_admin=True)
    tree = await make_tree()
    lena = await member_at(tree.loc_a, "location_manager")
    viewer = await newcomer(tree.org)
    hour = datetime.now(UTC) + timedelta(hours=1)
    source = (await grant(client, root, tree.loc_a, lena.user_id, "export_data", hour)).json()
    derived = await grant(client, lena, tree.loc_a, viewer, "export_data", hour)
    assert derived.status_code == 201, derived.text
    sooner = datetime.now(UTC) + timedelta(minutes=5)
    shortened = await rest(
        client, root, "PATCH", f"{H}/permission-overrides/{source['id']}",
        {"expires_at": sooner.isoformat(), "version": source["version"]},
    )  # fmt: skip
    assert shortened.status_code == 200, shortened.text
    rows = await fetch(
        "SELECT expires_at FROM hierarchy_permission_overrides WHERE id = $1", derived.json()["id"]
    )
    assert abs((rows[0]["expires_at"] - sooner).total_seconds()) < 1


# ---- managed settings (issue 19 #5) ---------------------------------------------------------


async def test_managed_settings_keys_are_the_platforms(client: httpx.AsyncClient) -> None:
    root = await sign_in(super_admin=True)
    tree = await make_tree()
    alice = await member_at(tree.org, "org_admin")
    marked = await rest(
        client, root, "PATCH", f"{H}/nodes/{tree.org}",
        {"settings": {"plan": "basic", "theme": "dark"}, "managed_settings": ["plan"]},
    )  # fmt: skip
    assert marked.status_code == 200, marked.text
    assert marked.json()["managed_settings"] == ["plan"]
    upgrade = await rest(
        client, alice, "PATCH", f"{H}/nodes/{tree.org}",
        {"settings": {"plan": "enterprise", "theme": "dark"}},
    )  # fmt: skip
    assert upgrade.status_code == 403
    assert upgrade.json()["detail"] == "`plan` is a managed setting: only super-admins change it"
    dropped = await rest(client, alice, "PATCH", f"{H}/nodes/{tree.org}", {"settings": {}})
    assert dropped.status_code == 403
    unmark = await rest(client, alice, "PATCH", f"{H}/nodes/{tree.org}", {"managed_settings": []})
    assert unmark.status_code == 403
    theme = await rest(
        client, alice, "PATCH", f"{H}/nodes/{tree.org}",
        {"settings": {"plan": "basic", "theme": "light"}},
    )  # fmt: skip
    assert theme.status_code == 200, theme.text
    by_admin = await admin_patch(
        client,
        root,
        "organization_hierarchy",
        tree.org,
        {
            "settings": json.dumps({"plan": "enterprise", "theme": "light"}),
            "version": theme.json()["version"],
        },
    )
    assert by_admin.status_code == 200, by_admin.text
    rows = await fetch("SELECT settings FROM organization_hierarchy WHERE id = $1", tree.org)
    assert json.loads(rows[0]["settings"]) == {"plan": "enterprise", "theme": "light"}
    on_location = await rest(
        client, root, "PATCH", f"{H}/nodes/{tree.loc_a}", {"managed_settings": ["plan"]}
    )
    assert on_location.status_code == 422
