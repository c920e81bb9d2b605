"""Feature flags over HTTP: the front end's view, OFREP, and the super-admins' API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.flags.store import flag_cache
from api.platform.db.sql import fetch
from tests.support.auth import sign_in
from tests.support.data import assign, flag_override, make_flag, make_tree, unique

ADMIN = "/api/v1/admin/feature-flags"


@pytest.fixture(autouse=True)
def fresh_flag_cache() -> None:
    flag_cache.invalidate()  # rows are written directly in these tests


def by_key(response: httpx.Response) -> dict[str, dict[str, object]]:
    return {item["key"]: item for item in response.json()["flags"]}


async def test_features_are_evaluated_for_the_caller_at_their_primary_node(
    client: httpx.AsyncClient,
) -> None:
    tree = await make_tree()
    member = await sign_in()
    await assign(member.user_id, tree.dept_a1, "user", primary=True)
    on_at_location = await make_flag()
    await flag_override(on_at_location, enabled=True, node_id=tree.loc_a)
    off_for_me = await make_flag(rollout="100")
    await flag_override(off_for_me, enabled=False, user_id=member.user_id)
    switched_off = await make_flag(enabled=False, rollout="100")
    archived = await make_flag(rollout="100")
    await fetch("UPDATE feature_flags SET archived = true WHERE key = $1", archived)

    flags = by_key(await client.get("/api/v1/features", cookies=member.cookies))
    assert flags[on_at_location] == {
        "key": on_at_location,
        "value": True,
        "variant": "on",
        "reason": "TARGETING_MATCH",
    }
    assert flags[off_for_me] == {
        "key": off_for_me,
        "value": False,
        "variant": "off",
        "reason": "TARGETING_MATCH",
    }
    assert flags[switched_off] == {
        "key": switched_off,
        "value": False,
        "variant": "off",
        "reason": "DISABLED",
    }
    assert archived not in flags


async def test_one_feature_and_unknown_keys(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    key = await make_flag(rollout="100")
    one = await client.get(f"/api/v1/features/{key}", cookies=member.cookies)
    assert one.json() == {"key": key, "value": True, "variant": "on", "reason": "DEFAULT"}
    missing = await client.get("/api/v1/features/no-such-flag", cookies=member.cookies)
    assert missing.status_code == 404
    assert missing.json()["extra"]["errorCode"] == "FLAG_NOT_FOUND"


async def test_features_need_a_session(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/features")).status_code == 401


async def test_a_node_outside_the_callers_reach_is_404(client: httpx.AsyncClient) -> None:
    mine, theirs = await make_tree(), await make_tree()
    member = await sign_in()
    await assign(member.user_id, mine.org, "viewer", primary=True)
    key = await make_flag()
    await flag_override(key, enabled=True, node_id=mine.loc_b)
    inside = await client.get(
        "/api/v1/features", params={"node": mine.dept_b1}, cookies=member.cookies
    )
    assert by_key(inside)[key]["value"] is True
    outside = await client.get(
        "/api/v1/features", params={"node": theirs.org}, cookies=member.cookies
    )
    assert outside.status_code == 404


# ---- OFREP -------------------------------------------------------------------------------


async def test_ofrep_single_flag_shape(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    key = await make_flag(rollout="100")
    response = await client.post(
        f"/ofrep/v1/evaluate/flags/{key}",
        json={"context": {}},
        cookies=member.cookies,
        headers=member.headers(),
    )
    assert response.status_code == 200
    assert response.json() == {
        "key": key,
        "value": True,
        "reason": "DEFAULT",
        "variant": "on",
        "metadata": {},
    }


async def test_ofrep_unknown_flag_is_flag_not_found(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    response = await client.post(
        "/ofrep/v1/evaluate/flags/missing-one",
        json={"context": {}},
        cookies=member.cookies,
        headers=member.headers(),
    )
    assert response.status_code == 404
    assert response.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert response.json()["key"] == "missing-one"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "PARSE_ERROR"),
        (b'{"context": []}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 5}}', 400, "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": "999999"}}', 403, "INVALID_CONTEXT"),
    ],
)
async def test_ofrep_bad_contexts(
    client: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    member = await sign_in()
    key = await make_flag()
    response = await client.post(
        f"/ofrep/v1/evaluate/flags/{key}",
        content=body,
        cookies=member.cookies,
        headers={**member.headers(), "content-type": "application/json"},
    )
    assert response.status_code == status
    assert response.json()["errorCode"] == code


async def test_super_admins_may_target_another_user(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    other = await sign_in()
    key = await make_flag()
    await flag_override(key, enabled=True, user_id=other.user_id)
    response = await client.post(
        f"/ofrep/v1/evaluate/flags/{key}",
        json={"context": {"targetingKey": str(other.user_id)}},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert response.json()["value"] is True


async def test_ofrep_bulk_with_etag_round_trip(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    key = await make_flag(rollout="100")
    first = await client.post(
        "/ofrep/v1/evaluate/flags",
        json={"context": {}},
        cookies=member.cookies,
        headers=member.headers(),
    )
    assert first.status_code == 200
    flags = {f["key"]: f for f in first.json()["flags"]}
    assert flags[key] == {
        "key": key,
        "value": True,
        "reason": "DEFAULT",
        "variant": "on",
        "metadata": {},
    }
    etag = first.headers["etag"]
    again = await client.post(
        "/ofrep/v1/evaluate/flags",
        json={"context": {}},
        cookies=member.cookies,
        headers={**member.headers(), "If-None-Match": etag},
    )
    assert again.status_code == 304
    assert again.content == b""
    await make_flag(rollout="100")
    flag_cache.invalidate()
    changed = await client.post(
        "/ofrep/v1/evaluate/flags",
        json={"context": {}},
        cookies=member.cookies,
        headers={**member.headers(), "If-None-Match": etag},
    )
    assert changed.status_code == 200


async def test_ofrep_needs_a_caller(client: httpx.AsyncClient) -> None:
    response = await client.post("/ofrep/v1/evaluate/flags", json={"context": {}})
    assert response.status_code == 401


# ---- admin API ---------------------------------------------------------------------------


async def test_admin_api_refuses_anonymous_and_non_super_admins(client: httpx.AsyncClient) -> None:
    assert (await client.get(ADMIN)).status_code == 401
    member = await sign_in()
    assert (await client.get(ADMIN, cookies=member.cookies)).status_code == 403
    created = await client.post(
        ADMIN,
        json={"key": unique("x"), "name": "X"},
        cookies=member.cookies,
        headers=member.headers(),
    )
    assert created.status_code == 403


async def test_admin_writes_need_csrf(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    response = await client.post(
        ADMIN, json={"key": unique("x"), "name": "X"}, cookies=admin.cookies
    )
    assert response.status_code == 403
    assert response.json()["extra"]["reason"] == "csrf_token"


async def test_flag_lifecycle_is_audited_and_versioned(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    key = unique("lifecycle")
    created = await client.post(
        ADMIN,
        json={"key": key, "name": "Lifecycle", "rollout_percentage": 12.5},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    updated = await client.patch(
        f"{ADMIN}/{key}",
        json={"version": 1, "enabled": True},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert updated.status_code == 200
    assert updated.json()["version"] == 2
    stale = await client.patch(
        f"{ADMIN}/{key}",
        json={"version": 1, "enabled": False},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert stale.status_code == 409
    assert stale.json()["extra"] == {"reason": "stale_version", "current_version": 2}
    archived = await client.post(
        f"{ADMIN}/{key}/archive",
        json={"version": 2},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert archived.json()["archived"] is True
    assert (await client.get(f"/api/v1/features/{key}", cookies=admin.cookies)).status_code == 404
    assert (await client.get(f"{ADMIN}/{key}", cookies=admin.cookies)).json()["archived"] is True

    audit = await client.get(
        "/api/v1/admin/audit-logs", params={"resource_id": key}, cookies=admin.cookies
    )
    entries = audit.json()["entries"]
    assert [e["action"] for e in entries] == [
        "feature_flag.archived",
        "feature_flag.updated",
        "feature_flag.created",
    ]
    assert all(e["actor_id"] == admin.user_id for e in entries)
    assert entries[1]["before"]["enabled"] is False
    assert entries[1]["after"]["enabled"] is True
    assert entries[0]["request_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "Not A Slug", "name": "x"}, "key"),
        ({"key": "ok-key", "name": ""}, "name"),
        ({"key": "ok-key", "name": "x", "rollout_percentage": 100.5}, "rollout_percentage"),
        ({"key": "ok-key", "name": "x", "rollout_percentage": -1}, "rollout_percentage"),
        ({"key": "ok-key", "name": "x", "rollout_percentage": 10.123}, "rollout_percentage"),
    ],
)
async def test_flag_validation_names_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    admin = await sign_in(super_admin=True)
    response = await client.post(ADMIN, json=body, cookies=admin.cookies, headers=admin.headers())
    assert response.status_code == 422, response.text
    assert response.json()["extra"]["field"] == field


async def test_unknown_fields_and_duplicate_keys_are_refused(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    key = await make_flag()
    duplicate = await client.post(
        ADMIN, json={"key": key, "name": "x"}, cookies=admin.cookies, headers=admin.headers()
    )
    assert duplicate.status_code == 409
    unknown = await client.post(
        ADMIN,
        json={"key": unique("k"), "name": "x", "evil": 1},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert unknown.status_code == 400


async def test_overrides_added_listed_and_removed_with_audit(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    member = await sign_in()
    tree = await make_tree()
    key = await make_flag()
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    made = await client.post(
        f"{ADMIN}/{key}/overrides",
        json={
            "user_id": member.user_id,
            "enabled": True,
            "reason": "beta tester",
            "expires_at": soon,
        },
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert made.status_code == 201, made.text
    flag_cache.invalidate()
    seen = await client.get(f"/api/v1/features/{key}", cookies=member.cookies)
    assert seen.json() == {"key": key, "value": True, "variant": "on", "reason": "TARGETING_MATCH"}
    node = await client.post(
        f"{ADMIN}/{key}/overrides",
        json={"node_id": tree.org, "enabled": False},
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert node.status_code == 201
    listed = await client.get(f"{ADMIN}/{key}/overrides", cookies=admin.cookies)
    assert len(listed.json()) == 2
    removed = await client.delete(
        f"{ADMIN}/{key}/overrides/{made.json()['id']}",
        cookies=admin.cookies,
        headers=admin.headers(),
    )
    assert removed.status_code == 204
    seen = await client.get(f"/api/v1/features/{key}", cookies=member.cookies)
    assert seen.json()["reason"] == "DEFAULT"
    actions = await fetch(
        "SELECT action FROM audit_logs WHERE resource_type = 'feature_flag_override' AND actor_id = $1 ORDER BY id",
        admin.user_id,
    )
    assert [a["action"] for a in actions] == [
        "feature_flag_override.created",
        "feature_flag_override.created",
        "feature_flag_override.deleted",
    ]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"enabled": True}, 422, "target"),
        ({"enabled": True, "user_id": 1, "node_id": 1}, 422, "target"),
        ({"enabled": True, "user_id": 2_000_000_000}, 404, "user_id"),
        ({"enabled": True, "node_id": 2_000_000_000}, 404, "node_id"),
        ({"enabled": True, "user_id": 1, "expires_at": "2001-01-01T00:00:00Z"}, 422, "expires_at"),
    ],
)
async def test_override_validation(
    client: httpx.AsyncClient, body: dict[str, object], status: int, field: str
) -> None:
    admin = await sign_in(super_admin=True)
    key = await make_flag()
    response = await client.post(
        f"{ADMIN}/{key}/overrides", json=body, cookies=admin.cookies, headers=admin.headers()
    )
    assert response.status_code == status, response.text
    assert response.json()["extra"]["field"] == field


async def test_audit_log_pagination_is_newest_first(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    for _ in range(3):
        await client.post(
            ADMIN,
            json={"key": unique("page"), "name": "p"},
            cookies=admin.cookies,
            headers=admin.headers(),
        )
    first = await client.get(
        "/api/v1/admin/audit-logs",
        params={"actor_id": admin.user_id, "limit": 2},
        cookies=admin.cookies,
    )
    page = first.json()
    assert len(page["entries"]) == 2
    second = await client.get(
        "/api/v1/admin/audit-logs",
        params={"actor_id": admin.user_id, "limit": 2, "before_id": page["next_cursor"]},
        cookies=admin.cookies,
    )
    ids = [e["id"] for e in page["entries"]] + [e["id"] for e in second.json()["entries"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 3
    assert second.json()["next_cursor"] is None
