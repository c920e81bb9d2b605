"""Two app processes on one database (PRODUCT §7): replicas are stateless.

They reach Postgres the scale-out way, through a transaction-pooling PgBouncer, with a
direct connection only for LISTEN (DATABASE_DIRECT_URL); every per-process cache must
still follow a change made anywhere within a second.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from api.platform.db.sql import fetch
from tests.support.auth import sign_in
from tests.support.data import assign, make_tree, unique
from tests.support.pgbouncer import PgBouncer
from tests.support.processes import AppProcess, start_app

pytestmark = pytest.mark.e2e


@pytest.fixture(name="replicas", scope="module")
def fx_replicas(database: str, pooler: PgBouncer) -> Iterator[tuple[AppProcess, AppProcess]]:
    through_pooler = pooler.url_for(database)
    direct = {"DATABASE_DIRECT_URL": database}
    first, second = start_app(through_pooler, direct), start_app(through_pooler, direct)
    yield first, second
    first.stop()
    second.stop()


def origin_headers(replica: AppProcess, csrf: str) -> dict[str, str]:
    return {"X-CSRF-Token": csrf, "Origin": replica.base_url}


async def test_a_session_is_valid_on_both_and_logout_on_one_is_seen_by_the_other(
    replicas: tuple[AppProcess, AppProcess],
) -> None:
    a, b = replicas
    user = await sign_in()
    cookies = user.cookies
    assert httpx.get(f"{a.base_url}/api/v1/auth/session/check", cookies=cookies).status_code == 200
    assert httpx.get(f"{b.base_url}/api/v1/auth/session/check", cookies=cookies).status_code == 200
    out = httpx.post(
        f"{a.base_url}/api/v1/auth/logout",
        cookies=cookies,
        headers=origin_headers(a, user.csrf_token),
    )
    assert out.status_code == 200, out.text
    assert httpx.get(f"{b.base_url}/api/v1/auth/session/check", cookies=cookies).status_code == 401


def seconds_until(
    predicate_url: str, cookies: dict[str, str], key: str, value: bool, limit: float = 3.0
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        response = httpx.get(predicate_url, cookies=cookies)
        flags = {f["key"]: f["value"] for f in response.json()["flags"]}
        if flags.get(key) is value:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{key} did not become {value} within {limit}s")


async def test_a_flag_change_on_one_replica_is_served_by_the_other_within_a_second(
    replicas: tuple[AppProcess, AppProcess],
) -> None:
    a, b = replicas
    admin = await sign_in(super_admin=True)
    key = unique("replicated")
    features_b = f"{b.base_url}/api/v1/features"
    httpx.get(features_b, cookies=admin.cookies)  # B has loaded and cached its flags
    created = httpx.post(
        f"{a.base_url}/api/v1/admin/feature-flags",
        json={"key": key, "name": "Replicated", "enabled": True, "rollout_percentage": 100},
        cookies=admin.cookies,
        headers=origin_headers(a, admin.csrf_token),
    )
    assert created.status_code == 201, created.text
    assert seconds_until(features_b, admin.cookies, key, True) < 1.0
    switched = httpx.patch(
        f"{a.base_url}/api/v1/admin/feature-flags/{key}",
        json={"version": 1, "enabled": False},
        cookies=admin.cookies,
        headers=origin_headers(a, admin.csrf_token),
    )
    assert switched.status_code == 200
    assert seconds_until(features_b, admin.cookies, key, False) < 1.0


async def test_a_change_to_what_rules_read_is_served_by_every_replica_within_a_second(
    replicas: tuple[AppProcess, AppProcess],
) -> None:
    """Results are cached per user; a rule reads the organisation's settings, so a change to
    them (here by psql, past every API) must reach both replicas' caches too."""
    tree = await make_tree()
    member = await sign_in()
    await assign(member.user_id, tree.dept_a1, "user", primary=True)
    key = unique("plan-rule")
    await fetch(
        "INSERT INTO feature_flags (key, name, enabled, rollout_percentage) VALUES ($1, $1, true, 0)",
        key,
    )
    await fetch(
        "INSERT INTO feature_flag_rules (flag_id, name, conditions, variant)"
        " SELECT id, 'enterprise', $2::jsonb, 'on' FROM feature_flags WHERE key = $1",
        key,
        '[{"attribute": "organization.settings.plan", "operator": "in", "values": ["enterprise"]}]',
    )
    urls = [f"{replica.base_url}/api/v1/features" for replica in replicas]
    for url in urls:
        assert seconds_until(url, member.cookies, key, False) < 1.0  # cached as off
    await fetch(
        'UPDATE organization_hierarchy SET settings = \'{"plan": "enterprise"}\' WHERE id = $1',
        tree.org,
    )
    for url in urls:
        assert seconds_until(url, member.cookies, key, True) < 1.0


def me_name(replica: AppProcess, cookies: dict[str, str]) -> str:
    response = httpx.get(f"{replica.base_url}/api/v1/auth/me", cookies=cookies)
    assert response.status_code == 200, response.text
    return str(response.json()["name"])


async def test_a_change_to_a_user_is_in_every_replicas_cached_me_within_a_second(
    replicas: tuple[AppProcess, AppProcess], database: str
) -> None:
    a, b = replicas
    user = await sign_in()
    for _ in range(3):  # both replicas have described this user and cached it
        me_name(a, user.cookies), me_name(b, user.cookies)
    renamed = unique("Renamed")
    connection = await asyncpg.connect(database)  # a change made anywhere, even psql
    try:
        await connection.execute("UPDATE users SET name = $1 WHERE id = $2", renamed, user.user_id)
    finally:
        await connection.close()
    started = time.monotonic()
    while {me_name(a, user.cookies), me_name(b, user.cookies)} != {renamed}:
        assert time.monotonic() - started < 1.0, "a replica still served the old /me"
        time.sleep(0.02)


async def test_replicas_serve_through_the_pooler_and_listen_directly(
    replicas: tuple[AppProcess, AppProcess], database: str
) -> None:
    a, b = replicas
    user = await sign_in()
    for replica in (a, b):
        checked = httpx.get(f"{replica.base_url}/api/v1/auth/session/check", cookies=user.cookies)
        assert checked.status_code == 200
        assert httpx.get(f"{replica.base_url}/api/v1/features", cookies=user.cookies).is_success
    connection = await asyncpg.connect(database)
    try:
        listeners = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
            " 'marketedge-listener' AND client_addr IS NULL AND datname = current_database()"
        )
    finally:
        await connection.close()
    assert listeners >= 2  # one direct (unix-socket) LISTEN connection per replica


async def test_a_stream_on_one_replica_hears_a_change_written_on_the_other(
    replicas: tuple[AppProcess, AppProcess],
) -> None:
    """Event streams ride the process's one LISTEN connection (direct, past the pooler): a
    flag created through A reaches a stream held by B within a second, its ETag the one B
    then serves."""
    a, b = replicas
    person, admin = await sign_in(), await sign_in(super_admin=True)
    bulk_url = f"{b.base_url}/ofrep/v1/evaluate/flags"
    async with httpx.AsyncClient(cookies=person.cookies, timeout=5) as client:
        first = await client.post(
            bulk_url, json={"context": {}}, headers=origin_headers(b, person.csrf_token)
        )
        (stream,) = first.json()["eventStreams"]
        assert stream["url"].startswith(f"{b.base_url}/ofrep/v1/event-stream/")
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as listener,
        listener.stream("GET", stream["url"]) as events,
    ):
        assert events.status_code == 200
        lines = events.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        created = httpx.post(
            f"{a.base_url}/api/v1/admin/feature-flags",
            json={"key": unique("streamed"), "name": "Streamed", "enabled": True},
            cookies=admin.cookies,
            headers=origin_headers(a, admin.csrf_token),
        )
        assert created.status_code == 201, created.text
        started = time.monotonic()
        async with asyncio.timeout(1.0):
            line = await anext(lines)
            while not line.startswith("data:"):
                line = await anext(lines)
        elapsed = time.monotonic() - started
    async with httpx.AsyncClient(cookies=person.cookies, timeout=5) as client:
        after = await client.post(
            bulk_url, json={"context": {}}, headers=origin_headers(b, person.csrf_token)
        )
    assert json.loads(line.removeprefix("data:"))["etag"] == after.headers["etag"]
    assert elapsed < 1.0
