"""The flags' two writers, the management API and Piccolo Admin, are one write path
(api/flags/service.py): the same rule refuses with the same sentence through either, a save
that changes nothing writes nothing, and the admin refuses a save built on an old row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.admin_ui.write_hooks import STALE_SAVE
from api.platform.db.sql import fetch
from tests.e2e.test_admin import admin_client, csrf, detail
from tests.support.auth import SignedIn, sign_in
from tests.support.data import make_flag, unique
from tests.support.processes import AppProcess, start_app

pytestmark = pytest.mark.e2e

REST = "/api/v1/admin"
TABLES = "/admin/api/tables"


@pytest.fixture(name="server", scope="module")
def fx_server(database: str) -> Iterator[AppProcess]:
    app = start_app(database)
    yield app
    app.stop()


def rest(server: AppProcess, who: SignedIn, method: str, path: str, body: Any = None) -> Any:
    with httpx.Client(base_url=server.base_url, timeout=10, cookies=who.cookies) as client:
        return client.request(
            method,
            f"{REST}{path}",
            json=body,
            headers=who.headers(origin=str(client.base_url).rstrip("/")),
        )


def rest_sentence(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["extra"]["field"], body["detail"]


def admin_sentence(response: httpx.Response) -> tuple[int, str, str]:
    first = response.json()["detail"][0]
    label, sentence = first["loc"][-1], first["msg"]
    return response.status_code, label.lower().replace(" ", "_"), sentence


async def flag_row(key: str) -> dict[str, Any]:
    return dict((await fetch("SELECT * FROM feature_flags WHERE key = $1", key))[0])


async def audit_rows(resource_type: str, resource_id: object) -> int:
    rows = await fetch(
        "SELECT count(*) AS n FROM audit_logs WHERE resource_type = $1 AND resource_id = $2",
        resource_type,
        str(resource_id),
    )
    return int(rows[0]["n"])


async def test_the_same_bad_flag_rule_and_override_get_the_same_sentence(
    server: AppProcess,
) -> None:
    admin = await sign_in(super_admin=True)
    user = await sign_in()
    key = await make_flag()
    flag = await flag_row(key)
    with admin_client(server, admin) as client:
        cases = [
            (
                rest(server, admin, "PATCH", f"/feature-flags/{key}", {"version": 1, "rollout_percentage": 150}),
                client.patch(
                    f"{TABLES}/feature_flags/{flag['id']}/",
                    json={"rollout_percentage": 150, "version": 1},
                    headers=csrf(client),
                ),
            ),
            (
                rest(server, admin, "POST", f"/feature-flags/{key}/rules", {"name": "r", "variant": "maybe"}),
                client.post(
                    f"{TABLES}/feature_flag_rules/",
                    json={"flag_id": flag["id"], "name": "r", "position": 0, "variant": "maybe", "conditions": "[]"},
                    headers=csrf(client),
                ),
            ),
            (
                rest(server, admin, "POST", f"/feature-flags/{key}/overrides", {"user_id": user.user_id, "variant": "pink", "reason": "x"}),
                client.post(
                    f"{TABLES}/feature_flag_overrides/",
                    json={"flag_id": flag["id"], "user_id": user.user_id, "variant": "pink", "reason": "x"},
                    headers=csrf(client),
                ),
            ),
            (
                rest(server, admin, "POST", f"/feature-flags/{key}/overrides", {"user_id": 10**9, "variant": "on"}),
                client.post(
                    f"{TABLES}/feature_flag_overrides/",
                    json={"flag_id": flag["id"], "user_id": 10**9, "variant": "on", "reason": ""},
                    headers=csrf(client),
                ),
            ),
        ]  # fmt: skip
        for by_rest, by_admin in cases:
            status, field, sentence = rest_sentence(by_rest)
            assert status >= 400, by_rest.text
            # The admin's form shows the sentence after its label, the field's name dropped.
            assert admin_sentence(by_admin) == (
                status,
                field,
                sentence.removeprefix(f"{field} "),
            ), (by_rest.text, by_admin.text)
    assert (await flag_row(key))["version"] == 1


async def test_a_save_that_changes_nothing_writes_nothing_through_either_writer(
    server: AppProcess,
) -> None:
    admin = await sign_in(super_admin=True)
    key = await make_flag(rollout="10")
    before = await flag_row(key)
    audited = await audit_rows("feature_flag", key)
    same = {"version": before["version"], "name": before["name"], "rollout_percentage": 10}
    again = rest(server, admin, "PATCH", f"/feature-flags/{key}", same)
    assert again.status_code == 200, again.text
    assert again.json()["version"] == before["version"]
    with admin_client(server, admin) as client:
        row = client.get(f"{TABLES}/feature_flags/{before['id']}/").json()
        saved = client.patch(
            f"{TABLES}/feature_flags/{before['id']}/", json=row, headers=csrf(client)
        )
        assert saved.status_code == 200, saved.text
        rule = rest(
            server, admin, "POST", f"/feature-flags/{key}/rules", {"name": "r", "variant": "on"}
        )
        assert rule.status_code == 201, rule.text
        rule_id = rule.json()["id"]
        segment = rest(server, admin, "POST", "/segments", {"key": unique("seg"), "name": "S"})
        assert segment.status_code == 201, segment.text
        segment_id = segment.json()["id"]
        rule_audits = await audit_rows("feature_flag_rule", rule_id)
        segment_audits = await audit_rows("segment", segment_id)
        for table, row_id in (("feature_flag_rules", rule_id), ("segments", segment_id)):
            whole = client.get(f"{TABLES}/{table}/{row_id}/").json()
            assert whole["version"] == 1
            saved = client.patch(f"{TABLES}/{table}/{row_id}/", json=whole, headers=csrf(client))
            assert saved.status_code == 200, saved.text
        assert (
            rest(
                server, admin, "PATCH", f"/feature-flags/{key}/rules/{rule_id}", {"name": "r"}
            ).status_code
            == 200
        )
        assert (
            rest(
                server, admin, "PATCH", f"/segments/{segment.json()['key']}", {"name": "S"}
            ).status_code
            == 200
        )
    after = await flag_row(key)
    assert (after["version"], after["updated_at"]) == (before["version"], before["updated_at"])
    assert await audit_rows("feature_flag", key) == audited
    assert await audit_rows("feature_flag_rule", rule_id) == rule_audits
    assert await audit_rows("segment", segment_id) == segment_audits
    for table, row_id in (("feature_flag_rules", rule_id), ("segments", segment_id)):
        rows = await fetch(f"SELECT version FROM {table} WHERE id = $1", row_id)
        assert rows[0]["version"] == 1, table


async def test_the_admin_refuses_a_stale_or_missing_version_with_the_sentence(
    server: AppProcess,
) -> None:
    admin = await sign_in(super_admin=True)
    key = await make_flag()
    flag = await flag_row(key)
    rule = rest(
        server, admin, "POST", f"/feature-flags/{key}/rules", {"name": "r", "variant": "on"}
    )
    segment = rest(server, admin, "POST", "/segments", {"key": unique("seg"), "name": "S"})
    rows = {
        "feature_flags": flag["id"],
        "feature_flag_rules": rule.json()["id"],
        "segments": segment.json()["id"],
    }
    # Someone else saves first: every row is now at version 2.
    assert (
        rest(
            server, admin, "PATCH", f"/feature-flags/{key}", {"version": 1, "name": "Other"}
        ).status_code
        == 200
    )
    assert (
        rest(
            server,
            admin,
            "PATCH",
            f"/feature-flags/{key}/rules/{rows['feature_flag_rules']}",
            {"position": 5},
        ).status_code
        == 200
    )
    assert (
        rest(
            server, admin, "PATCH", f"/segments/{segment.json()['key']}", {"name": "Other"}
        ).status_code
        == 200
    )
    with admin_client(server, admin) as client:
        for table, row_id in rows.items():
            for body in ({"name": "Mine", "version": 1}, {"name": "Mine"}):
                answer = client.patch(
                    f"{TABLES}/{table}/{row_id}/", json=body, headers=csrf(client)
                )
                assert answer.status_code == 409, (table, answer.text)
                assert detail(answer) == ("Version", STALE_SAVE)
            current = client.patch(
                f"{TABLES}/{table}/{row_id}/",
                json={"name": "Mine", "version": 2},
                headers=csrf(client),
            )
            assert current.status_code == 200, (table, current.text)
    assert (await flag_row(key))["name"] == "Mine"
    names = await fetch("SELECT name, version FROM segments WHERE id = $1", rows["segments"])
    assert (names[0]["name"], names[0]["version"]) == ("Mine", 3)
    conditions = await fetch(
        "SELECT conditions FROM feature_flag_rules WHERE id = $1", rows["feature_flag_rules"]
    )
    assert json.loads(conditions[0]["conditions"]) == []
