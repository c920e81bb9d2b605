"""Typed variants, rules and segments over HTTP: /api/v1/features, OFREP and the home page.

Rows are written directly (these tests are about serving, not editing); the flag cache is
cleared after each write, as the NOTIFY does in a running process.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from api.flags.store import flag_cache
from api.platform.db.sql import fetch
from tables.flags import FeatureFlag, FeatureFlagRule, Segment
from tables.hierarchy import HierarchyNode
from tests.support.auth import SignedIn, make_user, sign_in
from tests.support.data import assign, flag_override, make_tree, unique

COLOURS = {"blue": "#1f6feb", "green": "#2da44e", "orange": "#fb8500"}


@pytest.fixture(autouse=True)
def fresh_flag_cache() -> None:
    flag_cache.invalidate()


async def typed_flag(flag_type: str, variants: dict[str, Any], *, default: str, off: str,
                     rollout: str = "100", split: dict[str, int] | None = None) -> tuple[str, int]:  # fmt: skip
    key = unique("typed")
    row = FeatureFlag(
        key=key, name=key, enabled=True, rollout_percentage=Decimal(rollout),
        flag_type=flag_type, variants=variants, default_variant=default, off_variant=off,
        rollout_split=split,
    )  # fmt: skip
    await row.save()
    flag_cache.invalidate()
    return key, int(row.id)


async def add_rule(flag_id: int, name: str, conditions: list[dict[str, Any]], *,
                   variant: str, position: int = 0, segment_id: int | None = None) -> None:  # fmt: skip
    await FeatureFlagRule(
        flag_id=flag_id, name=name, position=position, conditions=conditions,
        variant=variant, segment_id=segment_id,
    ).save()  # fmt: skip
    flag_cache.invalidate()


def on_plan(*plans: str) -> list[dict[str, Any]]:
    return [{"attribute": "organization.settings.plan", "operator": "in", "values": list(plans)}]


async def member_of_org(settings: dict[str, Any] | None, email: str | None = None) -> SignedIn:
    tree = await make_tree()
    if settings is not None:
        await HierarchyNode.update({HierarchyNode.settings: settings}).where(
            HierarchyNode.id == tree.org
        )
    user = await make_user(email=email)
    await assign(user, tree.dept_a1, "user", primary=True)
    return await sign_in(user)


def features(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {item["key"]: item for item in response.json()["flags"]}


async def test_features_serve_typed_values_with_their_variant(client: httpx.AsyncClient) -> None:
    member = await member_of_org({"plan": "starter"})
    text, _ = await typed_flag("string", COLOURS, default="green", off="blue")
    number, _ = await typed_flag("integer", {"few": 3, "many": 30}, default="many", off="few")
    ratio, _ = await typed_flag("float", {"half": 0.5, "whole": 1}, default="whole", off="half")
    shape, _ = await typed_flag("object", {"a": {"x": [1, 2]}, "b": {}}, default="a", off="b")
    off, flag_id = await typed_flag("string", COLOURS, default="green", off="orange")
    await fetch("UPDATE feature_flags SET enabled = false WHERE id = $1", flag_id)
    flag_cache.invalidate()

    served = features(await client.get("/api/v1/features", cookies=member.cookies))
    assert served[text] == {
        "key": text,
        "value": "#2da44e",
        "variant": "green",
        "reason": "DEFAULT",
    }
    assert served[number]["value"] == 30
    assert served[ratio]["value"] == 1.0
    assert isinstance(served[ratio]["value"], float)
    assert served[shape]["value"] == {"x": [1, 2]}
    assert served[off] == {
        "key": off,
        "value": "#fb8500",
        "variant": "orange",
        "reason": "DISABLED",
    }
    one = await client.get(f"/api/v1/features/{number}", cookies=member.cookies)
    assert one.json() == {"key": number, "value": 30, "variant": "many", "reason": "DEFAULT"}


async def test_a_rule_on_the_organisations_plan(client: httpx.AsyncClient) -> None:
    key, flag_id = await typed_flag("integer", {"standard": 12, "extended": 24},
                                    default="standard", off="standard")  # fmt: skip
    await add_rule(flag_id, "enterprise", on_plan("enterprise"), variant="extended")
    enterprise = await member_of_org({"plan": "enterprise"})
    starter = await member_of_org({"plan": "starter"})
    no_settings = await member_of_org(None)

    got = features(await client.get("/api/v1/features", cookies=enterprise.cookies))[key]
    assert (got["value"], got["variant"], got["reason"]) == (24, "extended", "TARGETING_MATCH")
    for other in (starter, no_settings):
        got = features(await client.get("/api/v1/features", cookies=other.cookies))[key]
        assert (got["value"], got["reason"]) == (12, "DEFAULT")


async def test_overrides_beat_rules_and_rules_run_in_order(client: httpx.AsyncClient) -> None:
    key, flag_id = await typed_flag("string", COLOURS, default="blue", off="blue")
    await add_rule(flag_id, "second", [], variant="orange", position=20)
    await add_rule(flag_id, "first", on_plan("enterprise"), variant="green", position=10)
    member = await member_of_org({"plan": "enterprise"})
    rule = await client.post(f"/ofrep/v1/evaluate/flags/{key}", json={"context": {}},
                             cookies=member.cookies, headers=member.headers())  # fmt: skip
    assert rule.json() == {"key": key, "value": "#2da44e", "reason": "TARGETING_MATCH",
                           "variant": "green", "metadata": {"rule": "first"}}  # fmt: skip
    await fetch(
        "INSERT INTO feature_flag_overrides (flag_id, user_id, variant) VALUES ($1, $2, 'orange')",
        flag_id,
        member.user_id,
    )
    flag_cache.invalidate()
    mine = await client.post(f"/ofrep/v1/evaluate/flags/{key}", json={"context": {}},
                             cookies=member.cookies, headers=member.headers())  # fmt: skip
    assert mine.json()["variant"] == "orange"
    assert mine.json()["metadata"] == {"override": "user"}


async def test_a_segment_is_shared_between_flags(client: httpx.AsyncClient) -> None:
    domain = f"{unique('corp')}.example"
    staff = await member_of_org(None, email=f"kim@{domain}")
    outsider = await member_of_org(None)
    segment = Segment(key=unique("staff"), name="Staff",
                      conditions=[{"attribute": "user.email_domain", "operator": "in",
                                   "values": [domain]}])  # fmt: skip
    await segment.save()
    keys = []
    for _ in range(2):
        key, flag_id = await typed_flag("boolean", {"on": True, "off": False},
                                        default="on", off="off", rollout="0")  # fmt: skip
        await add_rule(flag_id, "staff", [], variant="on", segment_id=int(segment.id))
        keys.append(key)
    mine = features(await client.get("/api/v1/features", cookies=staff.cookies))
    theirs = features(await client.get("/api/v1/features", cookies=outsider.cookies))
    for key in keys:
        assert (mine[key]["value"], mine[key]["reason"]) == (True, "TARGETING_MATCH")
        assert (theirs[key]["value"], theirs[key]["reason"]) == (False, "DEFAULT")


async def test_ofrep_context_attributes_reach_rules_single_and_bulk(
    client: httpx.AsyncClient,
) -> None:
    key, flag_id = await typed_flag("boolean", {"on": True, "off": False},
                                    default="on", off="off", rollout="0")  # fmt: skip
    await add_rule(flag_id, "new-app", [{"attribute": "context.appVersion",
                                         "operator": "semver_gte", "values": ["2.0.0"]}],
                   variant="on")  # fmt: skip
    member = await member_of_org(None)

    async def bulk(context: dict[str, Any]) -> httpx.Response:
        return await client.post("/ofrep/v1/evaluate/flags", json={"context": context},
                                 cookies=member.cookies, headers=member.headers())  # fmt: skip

    new, old, none = (
        await bulk({"appVersion": "2.1.0"}),
        await bulk({"appVersion": "1.9.9"}),
        await bulk({}),
    )
    assert features(new)[key]["value"] is True
    assert features(new)[key]["metadata"] == {"rule": "new-app"}
    assert features(old)[key]["value"] is False
    assert features(none)[key]["value"] is False
    assert new.headers["etag"] != old.headers["etag"]
    again = await bulk({"appVersion": "1.9.9"})
    assert again.headers["etag"] == old.headers["etag"]  # same context, same answer
    single = await client.post(f"/ofrep/v1/evaluate/flags/{key}",
                               json={"context": {"appVersion": "3.0.0"}},
                               cookies=member.cookies, headers=member.headers())  # fmt: skip
    assert (single.json()["value"], single.json()["reason"]) == (True, "TARGETING_MATCH")


async def test_a_boolean_flag_from_before_variants_answers_as_before(
    client: httpx.AsyncClient,
) -> None:
    member = await member_of_org(None)
    key = unique("legacy")
    await fetch(
        "INSERT INTO feature_flags (key, name, enabled, rollout_percentage)"
        " VALUES ($1, $1, true, 0)",
        key,
    )
    await flag_override(key, enabled=True, user_id=member.user_id)
    flag_cache.invalidate()
    got = features(await client.get("/api/v1/features", cookies=member.cookies))[key]
    assert got == {"key": key, "value": True, "variant": "on", "reason": "TARGETING_MATCH"}


async def test_a_rule_stored_around_validation_is_left_out_not_served(
    client: httpx.AsyncClient,
) -> None:
    key, flag_id = await typed_flag("string", COLOURS, default="blue", off="blue")
    unknown_attribute = [{"attribute": "user.shoe_size", "operator": "in", "values": ["9"]}]
    await fetch(
        "INSERT INTO feature_flag_rules (flag_id, name, conditions, variant)"
        " VALUES ($1, 'broken', $2::jsonb, 'green')",
        flag_id,
        json.dumps(unknown_attribute),
    )
    flag_cache.invalidate()
    member = await member_of_org(None)
    got = features(await client.get("/api/v1/features", cookies=member.cookies))[key]
    assert (got["variant"], got["reason"]) == ("blue", "DEFAULT")


async def test_the_home_page_shows_typed_values(client: httpx.AsyncClient) -> None:
    key, flag_id = await typed_flag("string", COLOURS, default="green", off="blue")
    await add_rule(flag_id, "everyone", [], variant="orange")
    member = await member_of_org(None)
    page = (await client.get("/", cookies=member.cookies)).text
    row = page[page.index(f'data-flag="{key}"') :].split("</tr>")[0]
    assert "&#34;#fb8500&#34;" in row  # the JSON text, escaped by the template
    assert "orange: rule everyone" in row


async def test_an_ofrep_context_cannot_claim_what_rules_read_from_the_database(
    client: httpx.AsyncClient,
) -> None:
    """Context attributes live under `context.`: a caller sending a plan, an e-mail or an
    organisation of their choosing changes nothing that rules read from our own rows."""
    key, flag_id = await typed_flag("boolean", {"on": True, "off": False},
                                    default="on", off="off", rollout="0")  # fmt: skip
    await add_rule(flag_id, "enterprise", on_plan("enterprise"), variant="on", position=1)
    await add_rule(flag_id, "staff", [{"attribute": "user.email_domain", "operator": "in",
                                       "values": ["marketedge.example"]}], variant="on",
                   position=2)  # fmt: skip
    member = await member_of_org({"plan": "starter"})
    spoofed = {
        "organization": {"settings": {"plan": "enterprise"}, "slug": "acme"},
        "organization.settings.plan": "enterprise",
        "user": {"email": "boss@marketedge.example", "email_domain": "marketedge.example"},
        "user.email_domain": "marketedge.example",
        "plan": "enterprise",
    }
    answer = await client.post(f"/ofrep/v1/evaluate/flags/{key}", json={"context": spoofed},
                               cookies=member.cookies, headers=member.headers())  # fmt: skip
    assert (answer.json()["value"], answer.json()["reason"]) == (False, "DEFAULT")


async def test_a_flag_stored_around_validation_is_read_through_it(
    client: httpx.AsyncClient,
) -> None:
    """The loader reads rows through the admin's own validation: a float flag's whole number
    is served as a float; a flag whose values break its type is left out, never served."""
    whole, _ = await typed_flag("float", {"half": 0.5, "one": 1.0}, default="one", off="half")
    broken, _ = await typed_flag("integer", {"few": 3, "many": 30}, default="many", off="few")
    await fetch(
        "UPDATE feature_flags SET variants = $2::jsonb WHERE key = $1",
        whole,
        '{"half": 0.5, "one": 1}',
    )
    await fetch(
        "UPDATE feature_flags SET variants = $2::jsonb WHERE key = $1", broken,
        '{"few": "three", "many": 30}',
    )  # fmt: skip
    flag_cache.invalidate()
    member = await member_of_org(None)
    served = features(await client.get("/api/v1/features", cookies=member.cookies))
    assert served[whole]["value"] == 1.0
    assert isinstance(served[whole]["value"], float)
    assert broken not in served
