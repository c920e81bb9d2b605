"""Piccolo Admin at /admin/: super-admins only, through our session, every write audited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.platform.db.sql import fetch
from tests.support.auth import SignedIn, sign_in
from tests.support.data import make_flag, unique
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
            "feature_flag_rules", "segments", "feature_flag_schedules", "feature_flag_usage",
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
            json={"rollout_percentage": 150, "version": flag["version"]},
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
            json={"enabled": False, "version": flag["version"]},
            headers=csrf(client),
        )
        assert good.status_code == 200, good.text
    row = (await fetch("SELECT enabled, version FROM feature_flags WHERE id = $1", flag["id"]))[0]
    assert row["enabled"] is False
    assert row["version"] == flag["version"] + 1
    # Written by the flags service, as a REST update is: the same audit record.
    audit = await fetch(
        "SELECT actor_id, actor_email, action FROM audit_logs WHERE resource_type = 'feature_flag' AND resource_id = $1 AND action LIKE 'feature_flag.update%'",
        key,
    )
    assert [(a["actor_id"], a["action"]) for a in audit] == [
        (admin.user_id, "feature_flag.updated")
    ]


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
            line.split() == [key, "on", "true", "DEFAULT"]  # 100 % rollout
            for line in answer.json()["custom_form_success"].splitlines()
        ), answer.text


async def test_hierarchy_invariants_hold_in_the_admin_with_a_clear_4xx(server: AppProcess) -> None:
    from tests.support.data import make_tree

    admin = await sign_in(super_admin=True)
    tree = await make_tree()
    with admin_client(server, admin) as client:
        cycle = client.patch(
            f"/admin/api/tables/organization_hierarchy/{tree.loc_a}/",
            json={"parent_id": tree.dept_a1, "version": 1},
            headers=csrf(client),
        )
        assert 400 <= cycle.status_code < 500, cycle.text
        assert "hierarchy_no_cycles" in cycle.text or "descendant" in cycle.text
        nesting = client.patch(
            f"/admin/api/tables/organization_hierarchy/{tree.dept_a1}/",
            json={"parent_id": tree.org, "version": 1},
            headers=csrf(client),
        )
        assert 400 <= nesting.status_code < 500, nesting.text
        moved = client.patch(
            f"/admin/api/tables/organization_hierarchy/{tree.dept_a1}/",
            json={"parent_id": tree.loc_b, "version": 1},
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
            refused = client.patch(url, json={"given_name": "Pwned", "version": 1}, headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["extra"]["reason"] in ("csrf_token", "csrf_origin")
        rows = await fetch("SELECT given_name FROM users WHERE id = $1", victim.user_id)
        assert rows[0]["given_name"] != "Pwned"
        allowed = client.patch(
            url,
            json={"given_name": "Legit", "version": 1},
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
        for version, active in ((1, False), (2, True)):
            changed = client.patch(
                f"/admin/api/tables/users/{user.user_id}/",
                json={"is_active": active, "version": version},
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
            json={"given_name": "Renamed", "version": 1},
            headers=csrf(client),
        )
        assert changed.status_code == 200, changed.text
    rows = await fetch(
        "SELECT actor_id, before, after FROM audit_logs WHERE resource_type = 'user'"
        " AND resource_id = $1 AND action = 'user.updated'",
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
            f"/admin/api/tables/feature_flags/{flag}/",
            json={"id": 99, "version": 1},
            headers=csrf(client),
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
            ("feature_flags", flag["id"], {"created_by_id": other.user_id, "version": 1}),
            ("users", other.user_id, {"is_super_admin": True, "version": 1}),
            ("users", other.user_id, {"email": "someone-else@example.com", "version": 1}),
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
        "SELECT changes FROM audit_logs WHERE action = 'feature_flag.updated' AND resource_id = $1",
        key,
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
    body = {"flag_id": flag, "user_id": user.user_id, "variant": "on", "reason": "twice"}
    with admin_client(server, admin) as client:
        first = client.post(
            "/admin/api/tables/feature_flag_overrides/", json=body, headers=csrf(client)
        )
        assert first.status_code == 201, first.text
        again = client.post(
            "/admin/api/tables/feature_flag_overrides/", json=body, headers=csrf(client)
        )
    # The flags service's refusal, as the REST API answers it.
    assert again.status_code == 409, again.text
    assert detail(again) == ("Target", "This target already has an override for the flag")
    rows = await fetch("SELECT count(*) AS n FROM feature_flag_overrides WHERE flag_id = $1", flag)
    assert rows[0]["n"] == 1


async def test_no_admin_endpoint_answers_5xx_to_odd_requests(server: AppProcess) -> None:
    """The admin's API, prodded as an attacker would: every answer is a clear 4xx or a 2xx."""
    admin = await sign_in(super_admin=True)
    tables = [
        "feature_flags", "feature_flag_overrides", "organization_hierarchy",
        "user_hierarchy_assignments", "hierarchy_permission_overrides", "users", "audit_logs",
        "feature_flag_rules", "segments", "feature_flag_schedules", "feature_flag_usage",
    ]  # fmt: skip
    odd_queries = [
        "__order=bogus", "__order=-password", "__page=abc", "__page_size=-1", "__page_size=x",
        "id=abc", "unknown=1", "__visible_fields=nope", "__readable=maybe", "created_at=yesterday",
    ]  # fmt: skip
    odd_bodies: list[object] = [[1], "text", 7, None, {}, {"id": "x"}, {"nope": 1}]
    key = await make_flag()
    flag_id = (await fetch("SELECT id FROM feature_flags WHERE key = $1", key))[0]["id"]
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
        odd_json: list[object] = ["{", "[1]", "null", "", "1e999", '{"a": NaN}']
        for table, column in (
            ("feature_flags", "variants"),
            ("feature_flags", "rollout_split"),
            ("feature_flag_rules", "conditions"),
            ("feature_flag_rules", "split"),
            ("segments", "conditions"),
        ):
            for text in odd_json:
                for method, path in (
                    ("POST", f"/admin/api/tables/{table}/"),
                    ("PATCH", f"/admin/api/tables/{table}/{flag_id}/"),
                ):
                    answer = client.request(method, path, json={column: text}, headers=csrf(client))
                    seen.append((method, f"{path} {column}={text!r}", answer.status_code))
        for form in ("what-a-user-sees", "stale-flags"):
            for body in [*odd_bodies, {"days": "x"}, {"days": -1}, {"days": 10**9}]:
                answer = client.post(f"/admin/api/forms/{form}/", json=body, headers=csrf(client))
                seen.append(("POST", f"form {form} {body!r}", answer.status_code))
        odd_documents = ["[" * 5000, "{", "null", "1e999", '{"a": NaN}', '"x"', "{}", "x" * 9]
        for document in [*odd_documents, '{"format": 1, "flags": [{"key": 1}], "segments": []}']:
            for apply in ({}, {"apply": "true", "confirmation": "0" * 16}):
                body = {"document": document, **apply}
                answer = client.post(
                    "/admin/api/forms/import-flags/", json=body, headers=csrf(client)
                )
                seen.append(("POST", f"form import-flags {body!r}"[:80], answer.status_code))
    assert [s for s in seen if s[2] >= 500] == []


# ---- issue 14: variants, rules, segments, schedules, usage ---------------------------------


def detail(answer: httpx.Response) -> tuple[str, str]:
    """The admin's field error: (field label, sentence); 409 as the REST API answers it."""
    assert answer.status_code in (400, 409, 422), (
        answer.request.method,
        answer.request.url,
        answer.text,
    )
    first = answer.json()["detail"][0]
    return first["loc"][-1], first["msg"]


async def test_admin_rules_and_segments_use_the_apis_validation_and_are_audited(
    server: AppProcess,
) -> None:
    admin = await sign_in(super_admin=True)
    key = await make_flag()
    flag = (await fetch("SELECT id FROM feature_flags WHERE key = $1", key))[0]["id"]
    plan = {"attribute": "organization.settings.plan", "operator": "in", "values": ["pro"]}
    with admin_client(server, admin) as client:
        rule = {"flag_id": flag, "name": "pro", "position": 1, "variant": "on"}
        bad = client.post(
            "/admin/api/tables/feature_flag_rules/",
            json={**rule, "conditions": json.dumps([{**plan, "operator": "foo"}])},
            headers=csrf(client),
        )
        assert bad.status_code == 422, bad.text
        label, sentence = detail(bad)
        assert label == "Conditions"
        assert sentence.startswith("condition 1: operator 'foo' is not one of in, not_in")
        unknown = client.post(
            "/admin/api/tables/feature_flag_rules/",
            json={**rule, "variant": "maybe", "conditions": "[]"},
            headers=csrf(client),
        )
        assert detail(unknown) == ("Variant", "must be one of the flag's variants: off, on")
        segment = client.post(
            "/admin/api/tables/segments/",
            json={
                "key": unique("pro"),
                "name": "Pro",
                "description": "",
                "conditions": json.dumps([plan]),
            },
            headers=csrf(client),
        )
        assert segment.status_code == 201, segment.text
        segment_id = segment.json()[0]["id"]
        made = client.post(
            "/admin/api/tables/feature_flag_rules/",
            json={**rule, "conditions": json.dumps([plan]), "segment_id": segment_id},
            headers=csrf(client),
        )
        assert made.status_code == 201, made.text
        rule_id = made.json()[0]["id"]
        moved = client.patch(
            f"/admin/api/tables/feature_flag_rules/{rule_id}/",
            json={"flag_id": flag + 1, "version": 1},
            headers=csrf(client),
        )
        assert detail(moved) == ("Flag Id", "cannot be changed here")
        in_use = client.delete(f"/admin/api/tables/segments/{segment_id}/", headers=csrf(client))
        assert in_use.status_code == 409, in_use.text
        assert detail(in_use)[1].startswith("The segment is used by the rule 'pro' of the flag")
    rows = await fetch(
        "SELECT created_by_id, conditions FROM feature_flag_rules WHERE id = $1", rule_id
    )
    assert rows[0]["created_by_id"] == admin.user_id
    assert json.loads(rows[0]["conditions"]) == [plan]
    for action, resource in (
        ("feature_flag_rule.created", rule_id),
        ("segment.created", segment_id),
    ):
        audit = await fetch(
            "SELECT actor_id FROM audit_logs WHERE action = $1 AND resource_id = $2",
            action,
            str(resource),
        )
        assert [a["actor_id"] for a in audit] == [admin.user_id], action


async def test_admin_flag_variants_are_typed_and_a_named_one_stays(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    user = await sign_in()
    with admin_client(server, admin) as client:
        made = client.post(
            "/admin/api/tables/feature_flags/",
            json={
                "key": unique("size"),
                "name": "Size",
                "description": "",
                "enabled": False,
                "archived": False,
                "rollout_percentage": "0",
                "flag_type": "integer",
                "variants": '{"small": 1, "large": 3.0}',
                "default_variant": "large",
                "off_variant": "small",
            },
            headers=csrf(client),
        )
        assert made.status_code == 201, made.text
        flag = made.json()[0]["id"]
        override = client.post(
            "/admin/api/tables/feature_flag_overrides/",
            json={"flag_id": flag, "user_id": user.user_id, "variant": "small", "reason": ""},
            headers=csrf(client),
        )
        assert override.status_code == 201, override.text
        half = client.patch(
            f"/admin/api/tables/feature_flags/{flag}/",
            json={"variants": '{"small": 1.5, "large": 3}', "version": 1},
            headers=csrf(client),
        )
        assert detail(half) == (
            "Variants",
            "the value of 'small' must be a whole number for an integer flag"
            " (within ±9223372036854775807)",
        )
        removed = client.patch(
            f"/admin/api/tables/feature_flags/{flag}/",
            json={"variants": '{"large": 3, "tiny": 0}', "off_variant": "tiny", "version": 1},
            headers=csrf(client),
        )
        assert detail(removed) == (
            "Variants",
            "'small' is still named by an override; change that first",
        )
        # The form sends the row back whole, its JSON written differently: only the name moves.
        row = client.get(f"/admin/api/tables/feature_flags/{flag}/").json()
        row = {k: v for k, v in row.items() if not k.endswith("_at")}
        row["variants"] = json.dumps(json.loads(row["variants"]), indent=2)
        row["name"] = "Sizes"
        saved = client.patch(
            f"/admin/api/tables/feature_flags/{flag}/", json=row, headers=csrf(client)
        )
        assert saved.status_code == 200, saved.text
    stored = (await fetch("SELECT name, variants FROM feature_flags WHERE id = $1", flag))[0]
    assert (stored["name"], json.loads(stored["variants"])) == ("Sizes", {"small": 1, "large": 3})


async def test_a_scheduled_change_can_only_be_cancelled_in_the_admin(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    key = await make_flag()
    flag = (await fetch("SELECT id FROM feature_flags WHERE key = $1", key))[0]["id"]
    soon = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    with admin_client(server, admin) as client:
        base = "/admin/api/tables/feature_flag_schedules/"
        past = client.post(
            base,
            json={"flag_id": flag, "action": "enable", "run_at": "2001-01-01T00:00:00"},
            headers=csrf(client),
        )
        assert detail(past) == ("Run At", "must be in the future")
        no_argument = client.post(
            base,
            json={"flag_id": flag, "action": "set_rollout", "run_at": soon},
            headers=csrf(client),
        )
        assert detail(no_argument) == (
            "Rollout Percentage",
            "set_rollout needs a rollout_percentage",
        )
        applied = client.post(
            base,
            json={"flag_id": flag, "action": "enable", "run_at": soon, "status": "applied"},
            headers=csrf(client),
        )
        assert detail(applied) == ("Status", "cannot be set here")
        made = client.post(
            base,
            json={
                "flag_id": flag,
                "action": "set_rollout",
                "rollout_percentage": "25",
                "run_at": soon,
            },
            headers=csrf(client),
        )
        assert made.status_code == 201, made.text
        schedule = made.json()[0]["id"]
        later = client.patch(
            f"{base}{schedule}/", json={"run_at": "2099-01-01T00:00:00"}, headers=csrf(client)
        )
        assert detail(later) == ("Run At", "cannot be changed here")
        applied = client.patch(
            f"{base}{schedule}/", json={"status": "applied"}, headers=csrf(client)
        )
        assert detail(applied) == ("Status", "can only be changed to cancelled")
        cancelled = client.patch(
            f"{base}{schedule}/", json={"status": "cancelled"}, headers=csrf(client)
        )
        assert cancelled.status_code == 200, cancelled.text
        again = client.patch(
            f"{base}{schedule}/", json={"status": "cancelled"}, headers=csrf(client)
        )
        assert again.status_code == 200  # unchanged: nothing to write
        await fetch("UPDATE feature_flag_schedules SET status = 'applied' WHERE id = $1", schedule)
        revived = client.patch(
            f"{base}{schedule}/", json={"status": "cancelled"}, headers=csrf(client)
        )
        assert detail(revived) == (
            "Status",
            "Only a pending change can be cancelled; this one is applied",
        )
        assert client.delete(f"{base}{schedule}/", headers=csrf(client)).status_code == 405
    row = (await fetch("SELECT created_by_id FROM feature_flag_schedules WHERE id = $1", schedule))[
        0
    ]
    assert row["created_by_id"] == admin.user_id
    audit = await fetch(
        "SELECT action, actor_id FROM audit_logs WHERE resource_type = 'feature_flag_schedule'"
        " AND resource_id = $1 AND actor_id IS NOT NULL ORDER BY id",
        str(schedule),
    )
    assert [(a["action"], a["actor_id"]) for a in audit] == [
        ("feature_flag_schedule.created", admin.user_id),
        ("feature_flag_schedule.cancelled", admin.user_id),
    ]


async def test_usage_is_read_only_and_stale_flags_are_a_form(server: AppProcess) -> None:
    admin = await sign_in(super_admin=True)
    key = unique("stale")
    await fetch(
        "INSERT INTO feature_flags (key, name, created_at) VALUES ($1, $1, now() - interval '9 days')",
        key,
    )
    usage = (
        await fetch(
            "INSERT INTO feature_flag_usage (flag_id, hour, variant, evaluations, last_evaluated_at)"
            " SELECT id, now() - interval '8 days', 'on', 1, now() - interval '8 days'"
            " FROM feature_flags WHERE key = $1 RETURNING id",
            key,
        )
    )[0]["id"]
    with admin_client(server, admin) as client:
        base = "/admin/api/tables/feature_flag_usage/"
        assert client.get(base).status_code == 200
        assert client.post(base, json={"variant": "x"}, headers=csrf(client)).status_code == 405
        assert (
            client.patch(
                f"{base}{usage}/", json={"evaluations": 9}, headers=csrf(client)
            ).status_code
            == 405
        )
        assert client.delete(f"{base}{usage}/", headers=csrf(client)).status_code == 405
        answer = client.post(
            "/admin/api/forms/stale-flags/", json={"days": 7}, headers=csrf(client)
        )
        assert answer.status_code == 200, answer.text
        lines = answer.json()["custom_form_success"].splitlines()
        assert lines[1].split()[:2] == ["flag", "why"]
        assert any(line.split()[:2] == [key, "not_evaluated"] for line in lines[3:]), lines
