"""`GET /api/v1/auth/me` names every assignment's path, root first, next to its ids."""

from __future__ import annotations

import httpx

from api.platform.db.sql import fetch
from tests.support.auth import sign_in
from tests.support.data import assign, make_tree


async def test_me_names_the_path_of_each_assignment(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    member = await sign_in()
    await assign(member.user_id, tree.dept_b2, "user", primary=True)
    rows = await fetch(
        "SELECT id, name FROM organization_hierarchy WHERE id = ANY($1::int[])",
        [tree.org, tree.loc_b, tree.dept_b2],
    )
    name = {r["id"]: r["name"] for r in rows}
    client.cookies.update(member.cookies)
    body = (await client.get("/api/v1/auth/me")).json()
    (assignment,) = body["assignments"]
    assert assignment["path"] == [tree.org, tree.loc_b, tree.dept_b2]
    assert assignment["path_names"] == [name[tree.org], name[tree.loc_b], name[tree.dept_b2]]
    assert assignment["node_name"] == name[tree.dept_b2]
