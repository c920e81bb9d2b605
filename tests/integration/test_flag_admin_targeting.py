"""The super-admins' API for typed variants, targeting rules, segments, scheduled changes,
usage and stale flags (docs/FLAGS.md): every validation sentence, no reach across flags,
every change audited with its actor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.flags.store import flag_cache
from api.platform.db.sql import fetch
from tests.support.auth import SignedIn, sign_in
from tests.support.data import flag_override, make_flag, unique

ADMIN = "/api/v1/admin/feature-flags"
STALE = "/api/v1/admin/stale-flags"
SEGMENTS = "/api/v1/admin/segments"
COLOURS = {"blue": "#00f", "green": "#0f0", "red": "#f00"}
PLAN = {"attribute": "organization.settings.plan", "operator": "in", "values": ["enterprise"]}


@pytest.fixture(autouse=True)
def fresh_flag_cache() -> None:
    flag_cache.invalidate()


@pytest.fixture(name="admin")
async def fx_admin() -> SignedIn:
    return await sign_in(super_admin=True)


class Api:
    def __init__(self, client: httpx.AsyncClient, who: SignedIn) -> None:
        self.client, self.who = client, who

    async def __call__(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.request(
            method,
            path,
            json=body,
            cookies=self.who.cookies,
            headers=self.who.headers() if method != "GET" else None,
        )


@pytest.fixture(name="api")
def fx_api(client: httpx.AsyncClient, admin: SignedIn) -> Api:
    return Api(client, admin)


async def string_flag(api: Api, **extra: Any) -> dict[str, Any]:
    body = {
        "key": unique("colour"),
        "name": "Colour",
        "flag_type": "string",
        "variants": COLOURS,
        "default_variant": "green",
        "off_variant": "blue",
        **extra,
    }
    made = await api("POST", ADMIN, body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def refused(response: httpx.Response, field: str, sentence: str, status: int = 422) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["extra"]["field"] == field, body
    assert sentence in body["detail"], body


# ---- typed flags ---------------------------------------------------------------------------


async def test_a_string_flag_with_three_variants_is_created_and_served(
    api: Api, admin: SignedIn, client: httpx.AsyncClient
) -> None:
    flag = await string_flag(api, enabled=True, rollout_percentage=100)
    assert flag["variants"] == COLOURS
    assert (flag["flag_type"], flag["default_variant"], flag["off_variant"]) == (
        "string",
        "green",
        "blue",
    )
    seen = await client.get(f"/api/v1/features/{flag['key']}", cookies=admin.cookies)
    assert seen.json()["value"] == "#0f0"


async def test_a_boolean_flag_may_leave_out_its_variants(api: Api) -> None:
    made = await api("POST", ADMIN, {"key": unique("bool"), "name": "B"})
    assert made.json()["variants"] == {"on": True, "off": False}
    assert made.json()["rollout_split"] is None


async def test_float_values_are_stored_as_floats_and_integers_must_be_whole(api: Api) -> None:
    made = await api(
        "POST",
        ADMIN,
        {
            "key": unique("ratio"),
            "name": "Ratio",
            "flag_type": "float",
            "variants": {"low": 1, "high": 2.5},
            "default_variant": "high",
            "off_variant": "low",
        },
    )
    assert made.status_code == 201, made.text
    stored = await fetch("SELECT variants FROM feature_flags WHERE key = $1", made.json()["key"])
    assert stored[0]["variants"] == '{"low": 1.0, "high": 2.5}'
    assert isinstance(made.json()["variants"]["low"], float)


def typed(flag_type: str, variants: Any, **extra: Any) -> dict[str, Any]:
    names = list(variants) if isinstance(variants, dict) and variants else ["a"]
    return {
        "key": unique("typed"),
        "name": "T",
        "flag_type": flag_type,
        "variants": variants,
        "default_variant": names[0],
        "off_variant": names[-1],
        **extra,
    }


@pytest.mark.parametrize(
    ("body", "field", "sentence"),
    [
        (typed("integer", {"a": True}), "variants", "the value of 'a' must be a whole number"),
        (typed("integer", {"a": 2.5}), "variants", "the value of 'a' must be a whole number"),
        (typed("float", {"a": "1"}), "variants", "the value of 'a' must be a number"),
        (typed("string", {"a": 1}), "variants", "the value of 'a' must be text"),
        (typed("boolean", {"a": 1}), "variants", "the value of 'a' must be true or false"),
        (typed("object", {"a": [1]}), "variants", "the value of 'a' must be a JSON object"),
        (typed("string", {}), "variants", "variants must be an object of 1 to 50 named values"),
        (
            typed("integer", {f"v{i}": i for i in range(51)}),
            "variants",
            "variants must be an object of 1 to 50 named values",
        ),
        (typed("string", {"bad name": "x"}), "variants", "'bad name' is not a variant name"),
        (typed("string", {"a-": "x"}), "variants", "'a-' is not a variant name"),
        (
            {**typed("string", {"a": "x", "b": "y"}), "default_variant": "c"},
            "default_variant",
            "default_variant must be one of the flag's variants: a, b",
        ),
        (
            {**typed("string", {"a": "x", "b": "y"}), "off_variant": "c"},
            "off_variant",
            "off_variant must be one of the flag's variants: a, b",
        ),
        (
            typed("string", {"a": "x", "b": "y"}, rollout_split={"a": 50, "c": 50}),
            "rollout_split",
            "rollout_split must be one of the flag's variants",
        ),
        (
            typed("string", {"a": "x", "b": "y"}, rollout_split={"a": 10001}),
            "rollout_split",
            "the weight of 'a' must be a whole number from 0 to 10000",
        ),
        (
            typed("string", {"a": "x", "b": "y"}, rollout_split={"a": 1.5}),
            "rollout_split",
            "the weight of 'a' must be a whole number from 0 to 10000",
        ),
        (
            typed("string", {"a": "x", "b": "y"}, rollout_split={"a": 0, "b": 0}),
            "rollout_split",
            "the weights must add up to more than 0",
        ),
        (
            {"key": unique("s"), "name": "S", "flag_type": "string"},
            "variants",
            "variants must be an object",
        ),
    ],
)
async def test_typed_flag_validation_sentences(
    api: Api, body: dict[str, Any], field: str, sentence: str
) -> None:
    refused(await api("POST", ADMIN, body), field, sentence)


def refused_by_the_schema(response: httpx.Response, key: str) -> None:
    """An enum-typed field: the request's schema refuses a value outside it (400), before
    any handler runs, as the OpenAPI document says."""
    assert response.status_code == 400, response.text
    errors = response.json()["extra"]["errors"]
    assert [error["key"] for error in errors] == [key]
    assert "Invalid enum value" in errors[0]["message"]


async def test_an_unknown_flag_type_is_refused_by_the_schema(api: Api) -> None:
    refused_by_the_schema(await api("POST", ADMIN, typed("colour", {"a": 1})), "flag_type")
    flag = await string_flag(api)
    response = await api("PATCH", f"{ADMIN}/{flag['key']}", {"version": 1, "flag_type": 5})
    assert response.status_code == 422, response.text  # not text at all: the body's types
    assert response.json()["extra"] == {"field": "flag_type"}


async def test_an_unknown_schedule_action_is_refused_by_the_schema(api: Api) -> None:
    flag = await string_flag(api)
    body = {"action": "explode", "run_at": later()}
    refused_by_the_schema(await api("POST", f"{ADMIN}/{flag['key']}/schedules", body), "action")


async def test_a_flag_update_checks_the_whole_definition(api: Api) -> None:
    flag = await string_flag(api)
    key = flag["key"]
    wrong_type = await api("PATCH", f"{ADMIN}/{key}", {"version": 1, "flag_type": "integer"})
    refused(wrong_type, "variants", "must be a whole number for an integer flag")
    dropped_default = await api(
        "PATCH", f"{ADMIN}/{key}", {"version": 1, "variants": {"blue": "x", "red": "y"}}
    )
    refused(dropped_default, "default_variant", "default_variant must be one of the flag's")
    split = await api(
        "PATCH",
        f"{ADMIN}/{key}",
        {"version": 1, "rollout_split": {"blue": 1, "green": 3}, "rollout_percentage": 50},
    )
    assert split.status_code == 200, split.text
    assert split.json()["rollout_split"] == {"blue": 1, "green": 3}
    cleared = await api("PATCH", f"{ADMIN}/{key}", {"version": 2, "rollout_split": None})
    assert cleared.json()["rollout_split"] is None


async def test_a_variant_still_named_cannot_be_removed(api: Api) -> None:
    flag = await string_flag(api)
    key, version = flag["key"], 1
    member = await sign_in()
    made = await api(
        "POST", f"{ADMIN}/{key}/overrides", {"user_id": member.user_id, "variant": "red"}
    )
    assert made.status_code == 201, made.text
    without_red = {"blue": "#00f", "green": "#0f0"}
    refused(
        await api("PATCH", f"{ADMIN}/{key}", {"version": version, "variants": without_red}),
        "variants",
        "variants: 'red' is still named by an override; change that first",
    )
    await api("DELETE", f"{ADMIN}/{key}/overrides/{made.json()['id']}")

    rule = await api("POST", f"{ADMIN}/{key}/rules", {"name": "r", "split": {"red": 1, "blue": 1}})
    assert rule.status_code == 201, rule.text
    refused(
        await api("PATCH", f"{ADMIN}/{key}", {"version": version, "variants": without_red}),
        "variants",
        "variants: 'red' is still named by the rule 'r'",
    )
    await api("DELETE", f"{ADMIN}/{key}/rules/{rule.json()['id']}")

    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    schedule = await api(
        "POST",
        f"{ADMIN}/{key}/schedules",
        {"action": "set_default_variant", "variant": "red", "run_at": soon},
    )
    assert schedule.status_code == 201, schedule.text
    refused(
        await api("PATCH", f"{ADMIN}/{key}", {"version": version, "variants": without_red}),
        "variants",
        "variants: 'red' is still named by a pending scheduled change",
    )
    await api("POST", f"{ADMIN}/{key}/schedules/{schedule.json()['id']}/cancel")
    removed = await api("PATCH", f"{ADMIN}/{key}", {"version": version, "variants": without_red})
    assert removed.status_code == 200, removed.text
    assert removed.json()["variants"] == without_red


# ---- overrides -----------------------------------------------------------------------------


async def test_an_override_names_a_variant_or_uses_the_boolean_shorthand(
    api: Api, admin: SignedIn, client: httpx.AsyncClient
) -> None:
    member = await sign_in()
    flag = await string_flag(api, enabled=True)
    key = flag["key"]
    refused(
        await api("POST", f"{ADMIN}/{key}/overrides", {"user_id": member.user_id, "variant": "x"}),
        "variant",
        "variant must be one of the flag's variants: blue, green, red",
    )
    refused(
        await api("POST", f"{ADMIN}/{key}/overrides", {"user_id": member.user_id, "enabled": True}),
        "enabled",
        "enabled is shorthand for boolean flags; give variant",
    )
    refused(
        await api("POST", f"{ADMIN}/{key}/overrides", {"user_id": member.user_id}),
        "variant",
        "variant is required",
    )
    made = await api(
        "POST", f"{ADMIN}/{key}/overrides", {"user_id": member.user_id, "variant": "red"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["variant"] == "red"
    seen = await client.get(f"/api/v1/features/{key}", cookies=member.cookies)
    assert (seen.json()["value"], seen.json()["reason"]) == ("#f00", "TARGETING_MATCH")

    boolean = await make_flag()
    both = await api(
        "POST",
        f"{ADMIN}/{boolean}/overrides",
        {"user_id": member.user_id, "variant": "on", "enabled": True},
    )
    refused(both, "variant", "give variant or enabled, not both")
    shorthand = await api(
        "POST", f"{ADMIN}/{boolean}/overrides", {"user_id": member.user_id, "enabled": False}
    )
    assert shorthand.json()["variant"] == "off"


# ---- rules ---------------------------------------------------------------------------------


async def audit_actions(resource_type: str, resource_id: object) -> list[tuple[str, int | None]]:
    rows = await fetch(
        "SELECT action, actor_id FROM audit_logs WHERE resource_type = $1 AND resource_id = $2"
        " ORDER BY id",
        resource_type,
        str(resource_id),
    )
    return [(r["action"], r["actor_id"]) for r in rows]


async def test_rules_are_created_listed_updated_and_deleted_with_audit(
    api: Api, admin: SignedIn
) -> None:
    flag = await string_flag(api)
    key = flag["key"]
    made = await api(
        "POST",
        f"{ADMIN}/{key}/rules",
        {"name": "enterprise", "position": 10, "conditions": [PLAN], "variant": "red"},
    )
    assert made.status_code == 201, made.text
    rule = made.json()
    assert (rule["conditions"], rule["variant"], rule["split"]) == ([PLAN], "red", None)
    first = await api("POST", f"{ADMIN}/{key}/rules", {"name": "first", "variant": "blue"})
    listed = await api("GET", f"{ADMIN}/{key}/rules")
    assert [r["name"] for r in listed.json()] == ["first", "enterprise"]

    to_split = await api(
        "PATCH",
        f"{ADMIN}/{key}/rules/{rule['id']}",
        {"variant": None, "split": {"red": 1, "green": 1}},
    )
    assert to_split.status_code == 200, to_split.text
    assert (to_split.json()["variant"], to_split.json()["split"]) == (None, {"red": 1, "green": 1})
    duplicate = await api("PATCH", f"{ADMIN}/{key}/rules/{rule['id']}", {"name": "first"})
    assert duplicate.status_code == 409, duplicate.text
    deleted = await api("DELETE", f"{ADMIN}/{key}/rules/{first.json()['id']}")
    assert deleted.status_code == 204
    assert await audit_actions("feature_flag_rule", rule["id"]) == [
        ("feature_flag_rule.created", admin.user_id),
        ("feature_flag_rule.updated", admin.user_id),
    ]
    assert await audit_actions("feature_flag_rule", first.json()["id"]) == [
        ("feature_flag_rule.created", admin.user_id),
        ("feature_flag_rule.deleted", admin.user_id),
    ]


@pytest.mark.parametrize(
    ("body", "field", "sentence"),
    [
        ({"name": " ", "variant": "red"}, "name", "name must be 1 to 100 characters"),
        ({"name": "x" * 101, "variant": "red"}, "name", "name must be 1 to 100 characters"),
        ({"name": "r", "variant": "red", "position": 10**7}, "position", "position must be"),
        ({"name": "r"}, "variant", "give exactly one of variant or split"),
        ({"name": "r", "variant": "red", "split": {"red": 1}}, "variant", "give exactly one"),
        ({"name": "r", "variant": "pink"}, "variant", "variant must be one of the flag's"),
        ({"name": "r", "split": {"pink": 1}}, "split", "split must be one of the flag's"),
        ({"name": "r", "split": {"red": 0}}, "split", "the weights must add up to more than 0"),
        (
            {"name": "r", "variant": "red", "conditions": [{**PLAN, "operator": "foo"}]},
            "conditions",
            "condition 1: operator 'foo' is not one of in, not_in",
        ),
        (
            {"name": "r", "variant": "red", "conditions": [PLAN, {**PLAN, "attribute": "x"}]},
            "conditions",
            "condition 2: attribute must be one of",
        ),
        (
            {
                "name": "r",
                "variant": "red",
                "conditions": [{**PLAN, "operator": "matches", "values": ["("]}],
            },
            "conditions",
            "is not a valid pattern",
        ),
        ({"name": "r", "variant": "red", "segment_id": 2_000_000_000}, "segment_id", "segment"),
    ],
)
async def test_rule_validation_sentences(
    api: Api, body: dict[str, Any], field: str, sentence: str
) -> None:
    flag = await string_flag(api)
    response = await api("POST", f"{ADMIN}/{flag['key']}/rules", body)
    status = 404 if field == "segment_id" else 422
    assert response.status_code == status, response.text
    assert response.json()["extra"]["field"] == field
    assert sentence.lower() in response.json()["detail"].lower()


async def test_a_rule_is_only_reached_through_its_own_flag(api: Api) -> None:
    mine, other = await string_flag(api), await string_flag(api)
    rule = (
        await api("POST", f"{ADMIN}/{mine['key']}/rules", {"name": "r", "variant": "red"})
    ).json()
    across = f"{ADMIN}/{other['key']}/rules/{rule['id']}"
    assert (await api("PATCH", across, {"name": "stolen"})).status_code == 404
    assert (await api("DELETE", across)).status_code == 404
    rows = await fetch("SELECT name, flag_id FROM feature_flag_rules WHERE id = $1", rule["id"])
    assert (rows[0]["name"], rows[0]["flag_id"]) == ("r", mine["id"])


async def test_a_rule_on_the_organisations_plan_is_served(
    api: Api, client: httpx.AsyncClient
) -> None:
    from tests.support.data import assign, make_tree

    tree = await make_tree()
    await fetch(
        'UPDATE organization_hierarchy SET settings = \'{"plan": "enterprise"}\' WHERE id = $1',
        tree.org,
    )
    member = await sign_in()
    await assign(member.user_id, tree.dept_a1, "user", primary=True)
    flag = await string_flag(api, enabled=True)
    await api(
        "POST",
        f"{ADMIN}/{flag['key']}/rules",
        {"name": "ent", "conditions": [PLAN], "variant": "red"},
    )
    flag_cache.invalidate()
    seen = await client.get(f"/api/v1/features/{flag['key']}", cookies=member.cookies)
    assert (seen.json()["value"], seen.json()["reason"]) == ("#f00", "TARGETING_MATCH")


# ---- segments ------------------------------------------------------------------------------


async def test_segments_are_created_used_updated_and_deleted_with_audit(
    api: Api, admin: SignedIn
) -> None:
    key = unique("seg")
    made = await api("POST", SEGMENTS, {"key": key, "name": "Enterprise", "conditions": [PLAN]})
    assert made.status_code == 201, made.text
    segment = made.json()
    assert (await api("GET", f"{SEGMENTS}/{key}")).json()["conditions"] == [PLAN]
    assert key in [s["key"] for s in (await api("GET", SEGMENTS)).json()]
    flag = await string_flag(api)
    rule = await api(
        "POST",
        f"{ADMIN}/{flag['key']}/rules",
        {"name": "seg", "segment_id": segment["id"], "variant": "red"},
    )
    assert rule.status_code == 201, rule.text
    in_use = await api("DELETE", f"{SEGMENTS}/{key}")
    assert in_use.status_code == 409, in_use.text
    assert "used by the rule 'seg'" in in_use.json()["detail"]
    renamed = await api("PATCH", f"{SEGMENTS}/{key}", {"name": "Big customers"})
    assert renamed.json()["name"] == "Big customers"
    await api("DELETE", f"{ADMIN}/{flag['key']}/rules/{rule.json()['id']}")
    assert (await api("DELETE", f"{SEGMENTS}/{key}")).status_code == 204
    assert (await api("GET", f"{SEGMENTS}/{key}")).status_code == 404
    assert await audit_actions("segment", segment["id"]) == [
        ("segment.created", admin.user_id),
        ("segment.updated", admin.user_id),
        ("segment.deleted", admin.user_id),
    ]


@pytest.mark.parametrize(
    ("body", "field", "sentence"),
    [
        ({"key": "Not A Slug", "name": "x"}, "key", "key must be a lower-case slug"),
        ({"key": "ok", "name": ""}, "name", "name must be 1 to 200 characters"),
        (
            {"key": "ok", "name": "x", "conditions": [{**PLAN, "values": []}]},
            "conditions",
            "condition 1: values must be a list of 1 to 1000 entries",
        ),
        (
            {"key": "ok", "name": "x", "conditions": [{**PLAN, "operator": "lt", "values": ["a"]}]},
            "conditions",
            "condition 1: lt needs a number",
        ),
    ],
)
async def test_segment_validation_sentences(
    api: Api, body: dict[str, Any], field: str, sentence: str
) -> None:
    refused(await api("POST", SEGMENTS, body), field, sentence)


async def test_a_duplicate_segment_key_is_a_conflict(api: Api) -> None:
    key = unique("seg")
    assert (await api("POST", SEGMENTS, {"key": key, "name": "a"})).status_code == 201
    assert (await api("POST", SEGMENTS, {"key": key, "name": "b"})).status_code == 409


# ---- scheduled changes ---------------------------------------------------------------------


def later(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def test_a_change_is_scheduled_listed_and_cancelled_once(api: Api, admin: SignedIn) -> None:
    flag = await string_flag(api)
    key = flag["key"]
    made = await api(
        "POST",
        f"{ADMIN}/{key}/schedules",
        {"action": "set_rollout", "rollout_percentage": 25.5, "run_at": later(), "note": "ramp"},
    )
    assert made.status_code == 201, made.text
    schedule = made.json()
    assert (schedule["status"], schedule["created_by_id"]) == ("pending", admin.user_id)
    assert [s["id"] for s in (await api("GET", f"{ADMIN}/{key}/schedules")).json()] == [
        schedule["id"]
    ]
    other = await string_flag(api)
    across = await api("POST", f"{ADMIN}/{other['key']}/schedules/{schedule['id']}/cancel")
    assert across.status_code == 404
    cancelled = await api("POST", f"{ADMIN}/{key}/schedules/{schedule['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    again = await api("POST", f"{ADMIN}/{key}/schedules/{schedule['id']}/cancel")
    assert again.status_code == 409
    assert "Only a pending change can be cancelled; this one is cancelled" in again.json()["detail"]
    assert await audit_actions("feature_flag_schedule", schedule["id"]) == [
        ("feature_flag_schedule.created", admin.user_id),
        ("feature_flag_schedule.cancelled", admin.user_id),
    ]


@pytest.mark.parametrize(
    ("body", "field", "sentence"),
    [
        ({"action": "set_rollout"}, "rollout_percentage", "set_rollout needs a rollout_percentage"),
        (
            {"action": "enable", "rollout_percentage": 5},
            "rollout_percentage",
            "enable takes no rollout_percentage",
        ),
        ({"action": "set_default_variant"}, "variant", "set_default_variant needs a variant"),
        ({"action": "disable", "variant": "red"}, "variant", "disable takes no variant"),
        (
            {"action": "set_default_variant", "variant": "pink"},
            "variant",
            "variant must be one of the flag's variants",
        ),
        (
            {"action": "set_rollout", "rollout_percentage": 10.125},
            "rollout_percentage",
            "rollout_percentage allows two decimals at most",
        ),
        (
            {"action": "set_rollout", "rollout_percentage": 101},
            "rollout_percentage",
            "rollout_percentage must be within 0 and 100",
        ),
        (
            {"action": "enable", "run_at": "2001-01-01T00:00:00Z"},
            "run_at",
            "run_at must be in the future",
        ),
        (
            {"action": "enable", "run_at": "2099-01-01T00:00:00"},
            "run_at",
            "run_at must be a date-time with a time zone",
        ),
        ({"action": "enable", "note": "x" * 1001}, "note", "note must be text of at most 1000"),
    ],
)
async def test_schedule_validation_sentences(
    api: Api, body: dict[str, Any], field: str, sentence: str
) -> None:
    flag = await string_flag(api)
    response = await api("POST", f"{ADMIN}/{flag['key']}/schedules", {"run_at": later(), **body})
    refused(response, field, sentence)


# ---- usage and stale flags -----------------------------------------------------------------


async def test_usage_lists_hours_by_variant_and_the_last_evaluation(api: Api) -> None:
    flag = await string_flag(api)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for at, variant, count in (
        (hour, "red", 3),
        (hour, "blue", 1),
        (hour - timedelta(hours=1), "red", 7),
    ):
        await fetch(
            "INSERT INTO feature_flag_usage (flag_id, hour, variant, evaluations, last_evaluated_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            flag["id"],
            at,
            variant,
            count,
            at + timedelta(minutes=5),
        )
    usage = (await api("GET", f"{ADMIN}/{flag['key']}/usage")).json()
    assert [(h["variant"], h["evaluations"]) for h in usage["hours"]] == [
        ("blue", 1),
        ("red", 3),
        ("red", 7),
    ]
    assert datetime.fromisoformat(usage["last_evaluated_at"]) == hour + timedelta(minutes=5)
    never = await string_flag(api)
    assert (await api("GET", f"{ADMIN}/{never['key']}/usage")).json() == {
        "key": never["key"],
        "last_evaluated_at": None,
        "hours": [],
    }


async def test_stale_flags_are_the_unevaluated_and_the_settled(api: Api) -> None:
    old = datetime.now(UTC) - timedelta(days=40)

    async def flag(rollout: str, *, evaluated: datetime | None, created: datetime = old) -> str:
        key = unique("stale")
        await fetch(
            "INSERT INTO feature_flags (key, name, rollout_percentage, created_at,"
            " rollout_changed_at) VALUES ($1, $1, $2::numeric, $3, $3)",
            key,
            rollout,
            created,
        )
        if evaluated is not None:
            await fetch(
                "INSERT INTO feature_flag_usage (flag_id, hour, variant, evaluations,"
                " last_evaluated_at) SELECT id, $2, 'on', 1, $2 FROM feature_flags WHERE key = $1",
                key,
                evaluated,
            )
        return key

    recent = datetime.now(UTC) - timedelta(hours=2)
    never_evaluated = await flag("50", evaluated=None)
    long_ago = await flag("50", evaluated=old)
    settled = await flag("100", evaluated=recent)
    fresh = await flag("50", evaluated=recent)
    new = await flag("0", evaluated=None, created=datetime.now(UTC))
    response = await api("GET", f"{STALE}", None)
    assert response.status_code == 200, response.text
    reasons = {f["key"]: f["reasons"] for f in response.json()}
    assert reasons[never_evaluated] == ["not_evaluated"]
    assert reasons[long_ago] == ["not_evaluated"]
    assert reasons[settled] == ["rollout_settled"]
    assert fresh not in reasons
    assert new not in reasons
    longer = await api("GET", f"{STALE}?days=60")
    assert {never_evaluated, long_ago, settled}.isdisjoint(f["key"] for f in longer.json())
    assert (await api("GET", f"{STALE}?days=0")).status_code == 400


async def test_a_flag_may_be_called_stale(api: Api) -> None:
    await fetch("DELETE FROM feature_flags WHERE key = 'stale'")
    created = await api("POST", ADMIN, {"key": "stale", "name": "Stale"})
    assert created.status_code == 201, created.text
    read = await api("GET", f"{ADMIN}/stale")
    assert (read.status_code, read.json()["key"]) == (200, "stale")


# ---- who may -------------------------------------------------------------------------------


async def test_only_super_admins_reach_the_new_endpoints(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    key = await make_flag()
    await flag_override(key, enabled=True, user_id=member.user_id)
    for method, path in (
        ("GET", f"{ADMIN}/{key}/rules"),
        ("POST", f"{ADMIN}/{key}/rules"),
        ("GET", SEGMENTS),
        ("POST", SEGMENTS),
        ("GET", f"{ADMIN}/{key}/schedules"),
        ("POST", f"{ADMIN}/{key}/schedules"),
        ("GET", f"{ADMIN}/{key}/usage"),
        ("GET", f"{STALE}"),
    ):
        answer = await Api(client, member)(method, path, {} if method == "POST" else None)
        assert answer.status_code == 403, (method, path, answer.text)
