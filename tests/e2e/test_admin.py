"""Piccolo Admin at /admin/: super-admins only, through our session, every write audited."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from api.db import fetch
from tests.support.auth import SignedIn, sign_in
from tests.support.data import make_flag
from tests.support.processes import AppProcess, start_app

pytestmark = pytest.mark.e2e


@pytest.fixture(name="server", scope="module")
def fx_server(database: str) -> Iterator[AppProcess]:
    app = start_app(database)
    yield app
    app.stop()


def run(coroutine: object) -> object:
    return asyncio.get_event_loop().run_until_complete(coroutine)  # type: ignore[arg-type]


@contextmanager
def admin_client(server: AppProcess, who: SignedIn | None) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        if who is not None:
            client.cookies.set("me_session", who.token)
            client.get("/admin/")  # the admin's CSRF cookie
        yield client


def csrf(client: httpx.Client) -> dict[str, str]:
    """What the admin's JavaScript sends from its own page: the cookie's token and Origin."""
    return {
        "X-CSRFToken": client.cookies.get("csrftoken", ""),
        "Origin": str(client.base_url).rstrip("/"),
        "Referer": f"{client.base_url}/admin/",
    }


async def test_anonymous_visitors_are_sent_through_login(server: AppProcess) -> None:
    with admin_client(server, None) as client:
        slash = client.get("/admin")
        assert slash.status_code in (301, 302, 307, 308)
        assert slash.headers["location"] == "/admin/"
        page = client.get("/admin/")
        assert page.status_code == 302
        assert page.headers["location"] == "/api/v1/auth/login?next=/admin/"
        assert client.get("/admin/api/tables/").status_code == 401


async def test_signed_in_non_super_admins_get_a_403_page(server: AppProcess) -> None:
    viewer = await sign_in()
    with admin_client(server, viewer) as client:
        page = client.get("/admin/")
        assert page.status_code == 403
        assert "super-admins only" in page.text


async def test_super_admins_get_the_admin_and_its_tables(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    with admin_client(server, admin) as client:
        page = client.get("/admin/")
        assert page.status_code == 200
        assert "<html" in page.text.lower()
        tables = client.get("/admin/api/tables/").json()
        assert set(tables) == {
            "feature_flags", "feature_flag_overrides", "organization_hierarchy",
            "user_hierarchy_assignments", "hierarchy_permission_overrides", "users", "audit_logs",
        }  # fmt: skip


async def test_the_password_login_never_yields_a_session(server: AppProcess) -> None:
    with admin_client(server, None) as client:
        for path in ("/admin/auth/login/", "/admin/public/login/", "/admin/api/auth/login/"):
            response = client.post(path, json={"username": "admin", "password": "admin"})
            assert response.status_code in (401, 403, 404, 405)
            assert "id" not in response.cookies
    rows = await fetch("SELECT count(*) AS n FROM admin_sessions")
    assert rows[0]["n"] == 0


async def test_admin_flag_edit_is_validated_stored_and_audited_with_the_actor(
    server: AppProcess,
) -> None:
    admin = await sign_in(super_admin=True)
    key = await make_flag(rollout="100")
    flag = (await fetch("SELECT id, version FROM feature_flags WHERE key = $1", key))[0]
    with admin_client(server, admin) as client:
        bad = client.patch(
            f"/admin/api/tables/feature_flags/{flag['id']}/",
            json={"rollout_percentage": 150},
            headers=csrf(client),
        )
        assert bad.status_code == 422, bad.text
        assert bad.json()["detail"] == [
            {
                "loc": ["body", "Rollout Percentage"],
                "msg": "must be within 0 and 100",
                "type": "value_error",
            }
        ]
        put = client.put(
            f"/admin/api/tables/feature_flags/{flag['id']}/",
            json={"enabled": False},
            headers=csrf(client),
        )
        assert put.status_code == 405
        good = client.patch(
            f"/admin/api/tables/feature_flags/{flag['id']}/",
            json={"enabled": False},
            headers=csrf(client),
        )
        assert good.status_code == 200, good.text
    row = (await fetch("SELECT enabled, version FROM feature_flags WHERE id = $1", flag["id"]))[0]
    assert row["enabled"] is False
    assert row["version"] == flag["version"] + 1
    audit = await fetch(
        "SELECT actor_id, actor_email, action FROM audit_logs WHERE resource_type = 'feature_flag' AND resource_id = $1 AND action = 'feature_flag.update'",
        str(flag["id"]),
    )
    assert [(a["actor_id"], a["action"]) for a in audit] == [(admin.user_id, "feature_flag.update")]


async def test_the_audit_log_is_read_only_in_the_admin(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    entry = (
        await fetch(
            "INSERT INTO audit_logs (action, resource_type) VALUES ('probe', 'test') RETURNING id"
        )
    )[0]["id"]
    with admin_client(server, admin) as client:
        assert (
            client.delete(
                f"/admin/api/tables/audit_logs/{entry}/", headers=csrf(client)
            ).status_code
            == 405
        )
        assert (
            client.patch(
                f"/admin/api/tables/audit_logs/{entry}/", json={"action": "x"}, headers=csrf(client)
            ).status_code
            == 405
        )


async def test_demotion_and_logout_end_admin_access_at_once(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    with admin_client(server, admin) as client:
        assert client.get("/admin/api/tables/").status_code == 200
        await fetch("UPDATE users SET is_super_admin = false WHERE id = $1", admin.user_id)
        assert client.get("/admin/api/tables/").status_code == 403
    again = await sign_in(super_admin=True)
    with admin_client(server, again) as client:
        assert client.post("/admin/public/logout/", headers=csrf(client)).status_code == 200
        assert client.get("/admin/api/tables/").status_code == 401


async def test_what_a_user_sees_form(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    viewer = await sign_in()
    key = await make_flag(rollout="100")
    with admin_client(server, admin) as client:
        forms = client.get("/admin/api/forms/").json()
        slug = next(f["slug"] for f in forms if "user" in f["slug"])
        answer = client.post(
            f"/admin/api/forms/{slug}/", json={"email": viewer.email}, headers=csrf(client)
        )
        assert answer.status_code == 200, answer.text
        assert any(
            line.split() == [key, "on", "DEFAULT"]  # 100 % rollout
            for line in answer.json()["custom_form_success"].splitlines()
        ), answer.text


async def test_hierarchy_invariants_hold_in_the_admin_with_a_clear_4xx(server: AppProcess) -> None:
    from tests.support.data import make_tree

    admin = await sign_in(super_admin=True)
    tree = await make_tree()
    with admin_client(server, admin) as client:
        cycle = client.patch(
            f"/admin/api/tables/organization_hierarchy/{tree.loc_a}/",
            json={"parent_id": tree.dept_a1},
            headers=csrf(client),
        )
        assert 400 <= cycle.status_code < 500, cycle.text
        assert "hierarchy_no_cycles" in cycle.text or "descendant" in cycle.text
        nesting = client.patch(
            f"/admin/api/tables/organization_hierarchy/{tree.dept_a1}/",
            json={"parent_id": tree.org},
            headers=csrf(client),
        )
        assert 400 <= nesting.status_code < 500, nesting.text
        moved = client.patch(
            f"/admin/api/tables/organization_hierarchy/{tree.dept_a1}/",
            json={"parent_id": tree.loc_b},
            headers=csrf(client),
        )
        assert moved.status_code == 200, moved.text
    rows = await fetch("SELECT path FROM organization_hierarchy WHERE id = $1", tree.dept_a1)
    assert list(rows[0]["path"]) == [tree.org, tree.loc_b, tree.dept_a1]


# ---- issue 11: attacks replayed against the admin mount ------------------------------------


async def test_admin_csrf_cookie_is_the_sessions_token(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    with admin_client(server, admin) as client:
        assert client.cookies.get("csrftoken") == admin.csrf_token
    with admin_client(server, None) as client:
        client.cookies.set("me_session", admin.token)
        client.cookies.set("csrftoken", "attacker-chosen")
        again = client.get("/admin/api/tables/")
        assert f"csrftoken={admin.csrf_token}" in again.headers.get("set-cookie", "")


async def test_admin_writes_obey_the_apis_csrf_rule(server: AppProcess) -> None:
    """#5: a chosen csrftoken cookie/header pair, or a foreign, null or missing Origin, is 403."""
    admin = await sign_in(super_admin=True)
    victim = await sign_in()
    url = f"/admin/api/tables/users/{victim.user_id}/"
    origin = str(server.base_url).rstrip("/")
    with admin_client(server, None) as client:
        client.cookies.set("me_session", admin.token)
        client.cookies.set("csrftoken", "chosen-by-attacker")
        for headers in (
            {"X-CSRFToken": "chosen-by-attacker", "Origin": "http://evil.example"},
            {"X-CSRFToken": "chosen-by-attacker", "Origin": origin},
            {"X-CSRFToken": admin.csrf_token, "Origin": "http://evil.example"},
            {"X-CSRFToken": admin.csrf_token, "Origin": "null"},
            {"X-CSRFToken": admin.csrf_token},
            {"Origin": origin},
        ):
            refused = client.patch(url, json={"given_name": "Pwned"}, headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["extra"]["reason"] in ("csrf_token", "csrf_origin")
        rows = await fetch("SELECT given_name FROM users WHERE id = $1", victim.user_id)
        assert rows[0]["given_name"] != "Pwned"
        allowed = client.patch(
            url,
            json={"given_name": "Legit"},
            headers={"X-CSRFToken": admin.csrf_token, "Origin": origin},
        )
        assert allowed.status_code == 200, allowed.text


async def test_a_cross_site_logout_does_not_end_the_admin_session(server: AppProcess) -> None:
    """#5: a cookie-only GET (or a POST without the token) to the admin's logout is refused."""
    admin = await sign_in(super_admin=True)
    with admin_client(server, None) as client:
        client.cookies.set("me_session", admin.token)
        for path in ("/admin/public/logout", "/admin/public/logout/"):
            assert client.get(path).status_code == 405
        forged = client.post("/admin/public/logout/", headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403
        assert client.get("/admin/api/tables/").status_code == 200


async def test_admin_deactivation_ends_sessions_for_good(server: AppProcess) -> None:
    """#6: is_active false then true in the admin must not revive the old cookie."""
    admin = await sign_in(super_admin=True)
    user = await sign_in()
    with admin_client(server, admin) as client:
        for active in (False, True):
            changed = client.patch(
                f"/admin/api/tables/users/{user.user_id}/",
                json={"is_active": active},
                headers=csrf(client),
            )
            assert changed.status_code == 200, changed.text
    with admin_client(server, None) as client:
        client.cookies.set("me_session", user.token)
        assert client.get("/api/v1/auth/session/check").status_code == 401


async def test_admin_name_changes_are_audited(server: AppProcess) -> None:
    """#8: a PATCH of given_name in the admin leaves an audit row with the super-admin."""
    admin = await sign_in(super_admin=True)
    user = await sign_in()
    with admin_client(server, admin) as client:
        changed = client.patch(
            f"/admin/api/tables/users/{user.user_id}/",
            json={"given_name": "Renamed"},
            headers=csrf(client),
        )
        assert changed.status_code == 200, changed.text
    rows = await fetch(
        "SELECT actor_id, before, after FROM audit_logs WHERE resource_type = 'user'"
        " AND resource_id = $1 AND action = 'user.update'",
        str(user.user_id),
    )
    assert [r["actor_id"] for r in rows] == [admin.user_id]
    assert '"given_name": "Renamed"' in rows[0]["after"]


async def test_the_admins_former_500s_are_clear_4xx(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    key = await make_flag(rollout="10")
    flag = (await fetch("SELECT id FROM feature_flags WHERE key = $1", key))[0]["id"]
    with admin_client(server, admin) as client:
        new_id = client.patch(
            f"/admin/api/tables/feature_flags/{flag}/", json={"id": 99}, headers=csrf(client)
        )
        assert new_id.status_code == 422, new_id.text
        assert new_id.json()["detail"][0]["msg"] == "cannot be changed here"
        by_secret = client.get("/admin/api/tables/users/?__order=-password")
        assert by_secret.status_code == 400, by_secret.text
        form = client.post(
            "/admin/api/forms/what-a-user-sees/",
            content=b"email=someone%40example.com",
            headers={**csrf(client), "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415, form.text
    assert (await fetch("SELECT id FROM feature_flags WHERE key = $1", key))[0]["id"] == flag


async def test_fields_the_admin_does_not_edit_are_refused_not_written(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    other = await sign_in()
    key = await make_flag(rollout="10")
    flag = (await fetch("SELECT id, created_by_id FROM feature_flags WHERE key = $1", key))[0]
    with admin_client(server, admin) as client:
        for table, row, body in (
            ("feature_flags", flag["id"], {"created_by_id": other.user_id}),
            ("users", other.user_id, {"is_super_admin": True}),
            ("users", other.user_id, {"email": "someone-else@example.com"}),
        ):
            answer = client.patch(
                f"/admin/api/tables/{table}/{row}/", json=body, headers=csrf(client)
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"][0]["msg"] == "cannot be changed here"
    after = (await fetch("SELECT created_by_id FROM feature_flags WHERE id = $1", flag["id"]))[0]
    assert after["created_by_id"] == flag["created_by_id"]
    user = (await fetch("SELECT is_super_admin, email FROM users WHERE id = $1", other.user_id))[0]
    assert (user["is_super_admin"], user["email"]) == (False, other.email)


async def test_a_form_sent_back_whole_changes_only_what_changed(server: AppProcess) -> None:
    """The admin's forms send every field, timestamps cut to seconds: only the edit lands."""
    admin = await sign_in(super_admin=True)
    key = await make_flag(rollout="10")
    with admin_client(server, admin) as client:
        flag = (await fetch("SELECT * FROM feature_flags WHERE key = $1", key))[0]
        row = client.get(f"/admin/api/tables/feature_flags/{flag['id']}/").json()
        row["created_at"] = flag["created_at"].replace(microsecond=0).isoformat()
        row["updated_at"] = flag["updated_at"].replace(microsecond=0).isoformat()
        row["name"] = "Only the name changed"
        saved = client.patch(
            f"/admin/api/tables/feature_flags/{flag['id']}/", json=row, headers=csrf(client)
        )
        assert saved.status_code == 200, saved.text
    after = (await fetch("SELECT * FROM feature_flags WHERE id = $1", flag["id"]))[0]
    assert after["name"] == "Only the name changed"
    assert after["created_at"] == flag["created_at"]
    changes = await fetch(
        "SELECT changes FROM audit_logs WHERE action = 'feature_flag.update' AND resource_id = $1",
        str(flag["id"]),
    )
    assert len(changes) == 1
    lines = changes[0]["changes"].splitlines()
    assert f"name: {flag['name']} → Only the name changed" in lines
    assert not any(
        line.startswith(("created_at", "updated_at", "key:", "enabled")) for line in lines
    )


async def test_a_refused_write_reads_as_a_sentence(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    user = await sign_in()
    key = await make_flag(rollout="10")
    flag = (await fetch("SELECT id FROM feature_flags WHERE key = $1", key))[0]["id"]
    body = {"flag_id": flag, "user_id": user.user_id, "enabled": True, "reason": "twice"}
    with admin_client(server, admin) as client:
        first = client.post(
            "/admin/api/tables/feature_flag_overrides/", json=body, headers=csrf(client)
        )
        assert first.status_code == 201, first.text
        again = client.post(
            "/admin/api/tables/feature_flag_overrides/", json=body, headers=csrf(client)
        )
    assert again.status_code == 422, again.text
    assert again.json() == {
        "custom_form_error": "This person already has an override for this flag."
    }
    rows = await fetch("SELECT count(*) AS n FROM feature_flag_overrides WHERE flag_id = $1", flag)
    assert rows[0]["n"] == 1


async def test_no_admin_endpoint_answers_5xx_to_odd_requests(server: AppProcess) -> None:
    """The admin's API, prodded as an attacker would: every answer is a clear 4xx or a 2xx."""
    admin = await sign_in(super_admin=True)
    tables = [
        "feature_flags", "feature_flag_overrides", "organization_hierarchy",
        "user_hierarchy_assignments", "hierarchy_permission_overrides", "users", "audit_logs",
    ]  # fmt: skip
    odd_queries = [
        "__order=bogus", "__order=-password", "__page=abc", "__page_size=-1", "__page_size=x",
        "id=abc", "unknown=1", "__visible_fields=nope", "__readable=maybe", "created_at=yesterday",
    ]  # fmt: skip
    odd_bodies: list[object] = [[1], "text", 7, None, {}, {"id": "x"}, {"nope": 1}]
    seen: list[tuple[str, str, int]] = []
    with admin_client(server, admin) as client:
        for table in tables:
            base = f"/admin/api/tables/{table}/"
            for query in odd_queries:
                seen.append(("GET", f"{base}?{query}", client.get(f"{base}?{query}").status_code))
            for path in (f"{base}999999/", f"{base}abc/", f"{base}ids/?search=%25", f"{base}new/"):
                seen.append(("GET", path, client.get(path).status_code))
            for body in odd_bodies:
                for method, path in (("POST", base), ("PATCH", f"{base}999999/")):
                    answer = client.request(method, path, json=body, headers=csrf(client))
                    seen.append((method, f"{path} {body!r}", answer.status_code))
            answer = client.delete(f"{base}999999/", headers=csrf(client))
            seen.append(("DELETE", f"{base}999999/", answer.status_code))
        for body in odd_bodies:
            answer = client.post(
                "/admin/api/forms/what-a-user-sees/", json=body, headers=csrf(client)
            )
            seen.append(("POST", f"form {body!r}", answer.status_code))
    assert [s for s in seen if s[2] >= 500] == []
