"""Issue 19, rows 1-3, replayed over HTTP: huge numbers, odd digits, costly patterns and
oversized values are a 4xx or no match, never a 500 (docs/FLAGS.md, Limits)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from api.flags.bounds import (
    MAX_CONDITIONS_PROGRAM,
    MAX_FLAG_PROGRAM,
    MAX_OBJECT_VARIANT_BYTES,
    MAX_PATTERN_PROGRAM,
)
from api.flags.store import flag_cache
from tables.flags import FeatureFlag, FeatureFlagRule
from tests.support.auth import SignedIn, sign_in
from tests.support.data import unique

ADMIN = "/api/v1/admin/feature-flags"
SEGMENTS = "/api/v1/admin/segments"
HUGE = 10**400
COSTLY = "(.{1,30}){1,30}x0"  # RE2 program size 8165
AT_LIMIT = "(.{1,10}){1,10}x0"  # RE2 program size 925, the costliest kind within the limit


@pytest.fixture(autouse=True)
def fresh_flag_cache() -> None:
    flag_cache.invalidate()


async def post(client: httpx.AsyncClient, who: SignedIn, path: str, body: Any) -> httpx.Response:
    return await client.post(path, json=body, cookies=who.cookies, headers=who.headers())


async def flag_with_rule(conditions: list[dict[str, Any]]) -> str:
    """A string flag answering "hit" when the rule's conditions hold, "miss" otherwise;
    written directly (serving is under test, not editing)."""
    key = unique("bounds")
    flag = FeatureFlag(
        key=key, name=key, enabled=True, rollout_percentage=Decimal(100), flag_type="string",
        variants={"hit": "hit", "miss": "miss"}, default_variant="miss", off_variant="miss",
    )  # fmt: skip
    await flag.save()
    await FeatureFlagRule(
        flag_id=flag.id, name="r", position=0, conditions=conditions, variant="hit"
    ).save()
    flag_cache.invalidate()
    return key


def ofrep_failure(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorCode"] == code, body
    assert body["errorDetails"], body


async def test_a_huge_number_in_the_ofrep_context_is_no_match(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    key = await flag_with_rule(
        [{"attribute": "context.country", "operator": "in", "values": ["DE"]}]
    )
    numeric = await flag_with_rule(
        [{"attribute": "context.country", "operator": "gt", "values": [1]}]
    )
    for path in (f"/ofrep/v1/evaluate/flags/{key}", f"/ofrep/v1/evaluate/flags/{numeric}"):
        answer = await post(client, member, path, {"context": {"country": HUGE}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["variant"] == "miss"
    bulk = await post(client, member, "/ofrep/v1/evaluate/flags", {"context": {"country": HUGE}})
    assert bulk.status_code == 200, bulk.text


@pytest.mark.parametrize("targeting", ["²", "١٢", "123456789012345678", "99999999999", "1 "])
async def test_a_targeting_key_that_is_not_a_user_id_has_ofreps_shape(
    client: httpx.AsyncClient, targeting: str
) -> None:
    admin = await sign_in(super_admin=True)
    key = await flag_with_rule([])
    context = {"context": {"targetingKey": targeting}}
    single = await post(client, admin, f"/ofrep/v1/evaluate/flags/{key}", context)
    ofrep_failure(single, 400, "INVALID_CONTEXT")
    bulk = await post(client, admin, "/ofrep/v1/evaluate/flags", context)
    ofrep_failure(bulk, 400, "INVALID_CONTEXT")


@pytest.mark.parametrize(
    "body", [b"[1]", b'{"context": 5}', b'{"context": {"targetingKey": 7}}', b"{nope"]
)
async def test_bad_contexts_have_ofreps_shape(client: httpx.AsyncClient, body: bytes) -> None:
    member = await sign_in()
    for path in ("/ofrep/v1/evaluate/flags/x", "/ofrep/v1/evaluate/flags"):
        answer = await client.post(
            path,
            content=body,
            cookies=member.cookies,
            headers={**member.headers(), "content-type": "application/json"},
        )
        assert answer.status_code == 400, answer.text
        assert set(answer.json()) >= {"errorCode", "errorDetails"}


def refused(response: httpx.Response, field: str, *words: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["extra"]["field"] == field, body
    for word in words:
        assert word in body["detail"], body


async def test_huge_numbers_are_refused_on_write(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)

    def flag(**fields: Any) -> dict[str, Any]:
        return {"key": unique("n"), "name": "n", **fields}

    float_flag = flag(flag_type="float", variants={"a": HUGE, "b": 1.5}, default_variant="a",
                      off_variant="b")  # fmt: skip
    refused(await post(client, admin, ADMIN, float_flag), "variants", "finite")
    integer_flag = flag(flag_type="integer", variants={"a": 2**63, "b": 1}, default_variant="a",
                        off_variant="b")  # fmt: skip
    refused(await post(client, admin, ADMIN, integer_flag), "variants", "whole number")
    split = flag(flag_type="string", variants={"a": "a", "b": "b"}, default_variant="a",
                 off_variant="b", rollout_split={"a": HUGE, "b": 1})  # fmt: skip
    refused(await post(client, admin, ADMIN, split), "rollout_split", "whole number")
    rollout = flag(rollout_percentage=HUGE)
    refused(await post(client, admin, ADMIN, rollout), "rollout_percentage", "0 and 100")

    key = await post(client, admin, ADMIN, flag())
    assert key.status_code == 201, key.text
    rules = f"{ADMIN}/{key.json()['key']}/rules"
    for operator in ("gt", "in"):
        condition = {"attribute": "context.n", "operator": operator, "values": [HUGE]}
        rule = {"name": "r", "variant": "on", "conditions": [condition]}
        refused(await post(client, admin, rules, rule), "conditions", "9223372036854775807")
    segment = {"key": unique("s"), "name": "s",
               "conditions": [{"attribute": "context.n", "operator": "lt", "values": [HUGE]}]}  # fmt: skip
    refused(await post(client, admin, SEGMENTS, segment), "conditions", "needs a number")
    huge_split = {"name": "r", "split": {"on": HUGE, "off": 1}}
    refused(await post(client, admin, rules, huge_split), "split", "whole number")


async def test_costly_patterns_are_refused_naming_the_limit(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    made = await post(client, admin, ADMIN, {"key": unique("re"), "name": "re"})
    rules = f"{ADMIN}/{made.json()['key']}/rules"

    def matching(*patterns: str) -> list[dict[str, Any]]:
        return [{"attribute": "context.q", "operator": "matches", "values": list(patterns)}]

    costly = {"name": "costly", "variant": "on", "conditions": matching(*[COSTLY] * 10)}
    refused(
        await post(client, admin, rules, costly), "conditions", f"{MAX_PATTERN_PROGRAM} per pattern"
    )
    together = {"name": "together", "variant": "on", "conditions": matching(*[AT_LIMIT] * 3)}
    refused(await post(client, admin, rules, together), "conditions",
            f"{MAX_CONDITIONS_PROGRAM} per rule or segment")  # fmt: skip
    for n in range(MAX_FLAG_PROGRAM // (2 * 925)):
        fits = {"name": f"fits{n}", "variant": "on", "conditions": matching(AT_LIMIT, AT_LIMIT)}
        assert (await post(client, admin, rules, fits)).status_code == 201
    one_more = {"name": "one-more", "variant": "on", "conditions": matching(AT_LIMIT)}
    refused(
        await post(client, admin, rules, one_more), "conditions", f"{MAX_FLAG_PROGRAM} per flag"
    )
    segment = {"key": unique("s"), "name": "s", "conditions": matching(*[AT_LIMIT] * 3)}
    refused(await post(client, admin, SEGMENTS, segment), "conditions", "per rule or segment")


async def test_matching_at_the_limits_holds_a_request_a_few_milliseconds(
    client: httpx.AsyncClient,
) -> None:
    """Ten flags, each with two rules at the per-rule pattern limit: the evaluation's budget
    stops matching well before the time the attack took (1.6-6 s)."""
    member = await sign_in()
    for _ in range(10):
        await flag_with_rule(
            [{"attribute": "context.q", "operator": "matches", "values": [AT_LIMIT, AT_LIMIT]}]
        )
    body = {"context": {"q": "日" * 4096}}
    await post(client, member, "/ofrep/v1/evaluate/flags", body)  # first load of the flags
    started = time.perf_counter()
    for _ in range(5):
        answer = await post(client, member, "/ofrep/v1/evaluate/flags", body)
        assert answer.status_code == 200, answer.text
    assert (time.perf_counter() - started) / 5 < 0.05


async def test_oversized_values_are_refused_on_write(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    big = {"blob": "x" * MAX_OBJECT_VARIANT_BYTES}
    fits = {"blob": "x" * (MAX_OBJECT_VARIANT_BYTES - 20)}
    base = {"name": "o", "flag_type": "object", "default_variant": "a", "off_variant": "b"}
    too_big = {**base, "key": unique("o"), "variants": {"a": big, "b": {}}}
    refused(await post(client, admin, ADMIN, too_big), "variants", "16 KiB")
    five = {**base, "key": unique("o"), "variants": {n: fits for n in "abcde"}}
    refused(await post(client, admin, ADMIN, five), "variants", "64 KiB per flag")
    four = {**base, "key": unique("o"), "variants": {n: fits for n in "abc"}}
    assert (await post(client, admin, ADMIN, four)).status_code == 201
    rules = f"{ADMIN}/{four['key']}/rules"
    many = [{"attribute": "context.q", "operator": "in", "values": ["v" * 100] * 1000}]
    refused(await post(client, admin, rules, {"name": "r", "variant": "a", "conditions": many}),
            "conditions", "64 KiB per rule")  # fmt: skip
    segment = {"key": unique("s"), "name": "s", "conditions": many}
    refused(await post(client, admin, SEGMENTS, segment), "conditions", "64 KiB per segment")
