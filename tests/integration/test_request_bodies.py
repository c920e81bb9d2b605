"""Issue 11: request bodies are strictly typed and node settings are bounded.

`{"is_active": "false"}` used to deactivate an organization, and a 3 MB `settings` value
was accepted and copied into the append-only audit log. Each is now a 422 naming the field.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.platform.db.sql import fetch
from tests.integration.test_hierarchy_api import H, member_at, post
from tests.support.auth import SignedIn, sign_in
from tests.support.data import make_flag, make_tree


async def patch(client: httpx.AsyncClient, who: SignedIn, path: str, body: Any) -> httpx.Response:
    return await client.patch(path, json=body, cookies=who.cookies, headers=who.headers())


async def test_a_string_never_passes_for_a_boolean(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    response = await patch(client, org_admin, f"{H}/nodes/{tree.org}", {"is_active": "false"})
    assert response.status_code == 422, response.text
    assert response.json()["extra"]["field"] == "is_active"
    rows = await fetch("SELECT is_active FROM organization_hierarchy WHERE id = $1", tree.org)
    assert rows[0]["is_active"] is True


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/nodes/{org}/assignments", {"user_id": "{user}", "role": "viewer"}, "user_id"),
        ("/nodes/{org}/assignments",
         {"user_id": 0, "role": "viewer", "is_primary": "true"}, "is_primary"),
        ("/nodes/{org}/permission-overrides",
         {"user_id": 0, "permission": "read", "granted": "true", "reason": "x"}, "granted"),
        ("/nodes/{org}/permission-overrides",
         {"user_id": 0, "permission": "read", "granted": 1, "reason": "x"}, "granted"),
    ],
)  # fmt: skip
async def test_hierarchy_bodies_are_strict(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    filled = {
        k: (str(org_admin.user_id) if v == "{user}" else (org_admin.user_id if v == 0 else v))
        for k, v in body.items()
    }
    response = await post(client, org_admin, H + path.format(org=tree.org), filled)
    assert response.status_code == 422, response.text
    assert response.json()["extra"]["field"] == field


async def test_user_flags_are_strict(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    target = await sign_in()
    response = await patch(client, admin, f"/api/v1/users/{target.user_id}", {"is_active": "0"})
    assert response.status_code == 422
    assert response.json()["extra"]["field"] == "is_active"
    check = await client.get("/api/v1/auth/session/check", cookies=target.cookies)
    assert check.status_code == 200


async def test_flag_admin_bodies_are_strict(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    key = await make_flag(enabled=False)
    response = await patch(
        client, admin, f"/api/v1/admin/feature-flags/{key}", {"version": 1, "enabled": "true"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["extra"]["field"] == "enabled"
    rows = await fetch("SELECT enabled FROM feature_flags WHERE key = $1", key)
    assert rows[0]["enabled"] is False


@pytest.mark.parametrize(
    "settings",
    [
        {"blob": "x" * (900 * 1024)},  # under the 1 MiB body limit, which answers 413
        {"blob": "x" * (16 * 1024)},
        {"a": [[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]},
        {"nul": "\u0000"},
    ],
    ids=["900KiB", "just-over-16KiB", "21-levels", "nul"],
)
async def test_settings_are_bounded(client: httpx.AsyncClient, settings: dict[str, Any]) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    before = await fetch("SELECT count(*) AS n FROM audit_logs")
    for response in (
        await patch(client, org_admin, f"{H}/nodes/{tree.loc_a}", {"settings": settings}),
        await post(client, org_admin, f"{H}/nodes/{tree.org}/children",
                   {"name": "N", "slug": "n", "settings": settings}),
    ):  # fmt: skip
        if len(str(settings)) > 1024 * 1024:  # the request itself is over the body limit
            assert response.status_code == 413, response.text[:200]
            continue
        assert response.status_code == 422, response.text[:200]
        assert response.json()["extra"]["field"] == "settings"
    assert (await fetch("SELECT count(*) AS n FROM audit_logs")) == before


async def test_settings_within_bounds_are_kept(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    settings = {"theme": "dark", "deep": [[[[[[[[[[[[[[[[[["ok"]]]]]]]]]]]]]]]]]]}
    response = await patch(client, org_admin, f"{H}/nodes/{tree.loc_a}", {"settings": settings})
    assert response.status_code == 200, response.text
    assert response.json()["settings"] == settings


async def test_json_nested_beyond_any_decoder_is_a_4xx(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    org_admin = await member_at(tree.org, "org_admin")
    body = '{"settings": {"a": ' + "[" * 200_000 + "]" * 200_000 + "}}"
    for method, path in (
        ("PATCH", f"{H}/nodes/{tree.loc_a}"),
        ("POST", "/ofrep/v1/evaluate/flags"),
    ):
        response = await client.request(
            method,
            path,
            content=body,
            cookies=org_admin.cookies,
            headers={**org_admin.headers(), "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500, response.text[:200]
