"""`/` (PRODUCT §8): who you are, your organizations and permissions, your flags."""

from __future__ import annotations

import httpx

from tests.support.auth import sign_in
from tests.support.data import assign, make_flag, make_tree


async def test_anonymous_visitors_see_a_login_button(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert "/api/v1/auth/login?next=/" in page.text
    assert "Log out" not in page.text


async def test_signed_in_page_shows_organizations_permissions_and_flags(
    client: httpx.AsyncClient,
) -> None:
    tree = await make_tree()
    member = await sign_in()
    await assign(member.user_id, tree.loc_a, "department_lead", primary=True)
    key = await make_flag(rollout="100")
    from api.flags.store import flag_cache

    flag_cache.invalidate()
    page = (await client.get("/", cookies=member.cookies)).text
    assert member.email in page
    assert "department_lead" in page
    assert "read, view_reports, write" in page
    assert key in page
    assert "DEFAULT" in page
    assert "/admin/" not in page


async def test_super_admins_get_a_link_to_the_admin(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    page = (await client.get("/", cookies=admin.cookies)).text
    assert "href='/admin/'" in page
    assert "No organization yet" in page
