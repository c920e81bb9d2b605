"""`/` (PRODUCT §8): who you are, where you belong, what you may do, and why each flag is
on or off, in words."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from api.flags.evaluate import bucket
from api.flags.store import flag_cache
from api.platform.db.sql import fetch
from tests.support.auth import SignedIn, sign_in
from tests.support.data import Tree, assign, flag_override, make_flag, make_tree, unique


async def names(*node_ids: int) -> list[str]:
    rows = await fetch(
        "SELECT id, name FROM organization_hierarchy WHERE id = ANY($1::int[])", list(node_ids)
    )
    by_id = {r["id"]: r["name"] for r in rows}
    return [by_id[n] for n in node_ids]


def flag_row(page: str, key: str) -> str:
    """The text of the flag's table row, tags stripped and spaces collapsed."""
    found = re.search(rf'<tr data-flag="{re.escape(key)}">(.*?)</tr>', page, re.DOTALL)
    assert found, f"no row for {key}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


async def page_for(client: httpx.AsyncClient, who: SignedIn) -> str:
    flag_cache.invalidate()
    client.cookies.update(who.cookies)
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_anonymous_visitors_see_a_login_button(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert 'id="login" href="/api/v1/auth/login?next=/"' in page.text
    assert "Log in" in page.text
    assert "Log out" not in page.text


async def test_each_assignment_is_shown_with_its_full_path(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    member = await sign_in()
    await assign(member.user_id, tree.dept_a1, "user", primary=True)
    await assign(member.user_id, tree.loc_b, "department_lead")
    org, loc_a, dept_a1, loc_b = await names(tree.org, tree.loc_a, tree.dept_a1, tree.loc_b)
    page = await page_for(client, member)
    assert member.email in page
    assert f"<td>{org} / {loc_a} / {dept_a1}</td>" in page
    assert f"<td>{org} / {loc_b}</td>" in page
    assert "read, view_reports, write" in page
    assert "You are a super-admin" not in page
    assert 'href="/admin/"' not in page


async def test_node_names_are_escaped(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    await fetch(
        "UPDATE organization_hierarchy SET name = $1 WHERE id = $2", "<b>Acme & Co</b>", tree.org
    )
    member = await sign_in()
    await assign(member.user_id, tree.org, "viewer", primary=True)
    page = await page_for(client, member)
    assert "&lt;b&gt;Acme &amp; Co&lt;/b&gt;" in page
    assert "<b>Acme" not in page


async def test_super_admins_are_marked_and_get_a_link_to_the_admin(
    client: httpx.AsyncClient,
) -> None:
    admin = await sign_in(super_admin=True)
    page = await page_for(client, admin)
    assert "You are a super-admin" in page
    assert 'href="/admin/"' in page
    assert "No organization yet" in page


@dataclass(frozen=True)
class FlagCase:
    """A flag set up for a member of `tree.dept_a1`, and what the page must say about it."""

    setup: Callable[[Tree, int], Awaitable[str]]
    value: str
    reason: str  # may name {org}, {loc_a}: filled with the tree's node names


async def _user_override(tree: Tree, user_id: int, *, on: bool, rollout: str) -> str:
    key = await make_flag(rollout=rollout)
    await flag_override(key, enabled=on, user_id=user_id)
    return key


async def _node_override(node_id: int, *, on: bool, rollout: str) -> str:
    key = await make_flag(rollout=rollout)
    await flag_override(key, enabled=on, node_id=node_id)
    return key


async def _split(user_id: int, *, inside: bool) -> str:
    key = unique("split")
    while (bucket(key, user_id) < 5000) != inside:
        key = unique("split")
    return await make_flag(key, rollout="50")


async def _disabled(tree: Tree, user_id: int) -> str:
    key = await make_flag(enabled=False, rollout="100")
    await flag_override(key, enabled=True, user_id=user_id)
    return key


REASON_CASES = {
    "user_override_on": FlagCase(
        lambda t, u: _user_override(t, u, on=True, rollout="0"), "on", "on: override for you"
    ),
    "user_override_off": FlagCase(
        lambda t, u: _user_override(t, u, on=False, rollout="100"), "off", "off: override for you"
    ),
    "location_override_names_the_location": FlagCase(
        lambda t, u: _node_override(t.loc_a, on=True, rollout="0"),
        "on",
        "on: override for {org} / {loc_a}",
    ),
    "organisation_override_names_the_organisation": FlagCase(
        lambda t, u: _node_override(t.org, on=False, rollout="100"),
        "off",
        "off: override for {org}",
    ),
    "kill_switch": FlagCase(_disabled, "off", "off: switched off for everyone"),
    "zero_percent": FlagCase(lambda t, u: make_flag(rollout="0"), "off", "off: 0 % rollout"),
    "hundred_percent": FlagCase(lambda t, u: make_flag(rollout="100"), "on", "on: 100 % rollout"),
    "inside_the_rollout": FlagCase(
        lambda t, u: _split(u, inside=True), "on", "50 % rollout: you are in"
    ),
    "outside_the_rollout": FlagCase(
        lambda t, u: _split(u, inside=False), "off", "50 % rollout: you are not in"
    ),
    "fractional_rollout": FlagCase(
        lambda t, u: make_flag(rollout="12.50"), "", "12.5 % rollout: you are"
    ),
}


@pytest.mark.parametrize("case", REASON_CASES.values(), ids=REASON_CASES.keys())
async def test_flag_reasons_are_explained_in_words(
    client: httpx.AsyncClient, case: FlagCase
) -> None:
    tree = await make_tree()
    member = await sign_in()
    await assign(member.user_id, tree.dept_a1, "user", primary=True)
    key = await case.setup(tree, member.user_id)
    org, loc_a = await names(tree.org, tree.loc_a)
    row = flag_row(await page_for(client, member), key)
    assert row.startswith(f"{key} {case.value}")
    assert case.reason.format(org=org, loc_a=loc_a) in row
