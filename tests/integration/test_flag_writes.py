"""Flag writes through the one write path: the writer's own process reads its write at
once, and an update that changes nothing is nothing to the database too (no version bump,
no `updated_at`, no NOTIFY), whoever sends it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from api.flags.store import flag_cache
from api.platform.db.changes import listener
from api.platform.db.sql import engine, fetch
from tests.support.auth import sign_in
from tests.support.data import make_flag

FLAGS = "/api/v1/admin/feature-flags"


@pytest.fixture(name="trusted_cache")
def fx_trusted_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache as on a replica whose listener is up: it trusts itself until told."""
    monkeypatch.setattr(listener, "connected", True)
    flag_cache.invalidate()


async def test_a_write_is_read_by_the_next_request_on_the_same_process(
    client: httpx.AsyncClient, trusted_cache: None
) -> None:
    admin = await sign_in(super_admin=True)
    user = await sign_in()
    key = await make_flag(rollout="100")
    version = 1
    for enabled in [False, True] * 10:
        seen = await client.get(f"/api/v1/features/{key}", cookies=user.cookies)
        assert seen.json()["value"] is (not enabled)  # warm: served from the cache
        changed = await client.patch(
            f"{FLAGS}/{key}",
            json={"version": version, "enabled": enabled},
            cookies=admin.cookies,
            headers=admin.headers(),
        )
        assert changed.status_code == 200, changed.text
        version = changed.json()["version"]
        seen = await client.get(f"/api/v1/features/{key}", cookies=user.cookies)
        assert seen.json()["value"] is enabled
    assert version == 21


@pytest.fixture(name="notices")
async def fx_notices() -> AsyncIterator[list[str]]:
    connection = await asyncpg.connect(engine().config["dsn"])
    seen: list[str] = []
    await connection.add_listener("feature_flags_changed", lambda *args: seen.append(args[3]))
    yield seen
    await connection.close()


async def test_an_update_that_changes_nothing_bumps_touches_and_notifies_nothing(
    notices: list[str],
) -> None:
    key = await make_flag()
    await asyncio.sleep(0.3)
    notices.clear()  # the insert's
    before = (await fetch("SELECT version, updated_at FROM feature_flags WHERE key = $1", key))[0]
    for table in ("feature_flags", "feature_flag_overrides", "segments", "feature_flag_rules"):
        await fetch(f"UPDATE {table} SET id = id")  # what Piccolo Admin sends for a no-op save
    await fetch("UPDATE feature_flags SET name = name WHERE key = $1", key)
    await asyncio.sleep(0.3)
    assert notices == []
    after = (await fetch("SELECT version, updated_at FROM feature_flags WHERE key = $1", key))[0]
    assert dict(after) == dict(before)

    await fetch("UPDATE feature_flags SET name = 'renamed' WHERE key = $1", key)
    for _ in range(50):
        if notices:
            break
        await asyncio.sleep(0.05)
    assert notices == ["feature_flags"]
    renamed = (await fetch("SELECT version, updated_at FROM feature_flags WHERE key = $1", key))[0]
    assert renamed["version"] == before["version"] + 1
    assert renamed["updated_at"] > before["updated_at"]
