"""Usage counts in the database match the requests made (docs/FLAGS.md "Usage"): every
/api/v1/features list, /features/{key}, OFREP single and OFREP bulk request (a 304 too)
counts each flag it returns once, by variant and hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from api.flags.store import flag_cache
from api.flags.usage import UsageCounter, usage
from tables.flags import FeatureFlag, FeatureFlagUsage
from tests.support.auth import sign_in
from tests.support.data import unique


async def boolean_flag(*, enabled: bool = True, rollout: str = "100") -> tuple[str, int]:
    key = unique("counted")
    flag = FeatureFlag(key=key, name=key, enabled=enabled, rollout_percentage=Decimal(rollout))
    await flag.save()
    flag_cache.invalidate()
    return key, int(flag.id)


async def counted(flag_id: int) -> dict[str, int]:
    rows = await FeatureFlagUsage.select(
        FeatureFlagUsage.variant, FeatureFlagUsage.evaluations
    ).where(FeatureFlagUsage.flag_id == flag_id)
    return {row["variant"]: row["evaluations"] for row in rows}


@pytest.fixture(autouse=True)
async def counts_start_empty() -> None:
    """Counts from earlier tests are written before this one counts."""
    await usage.flush()


async def test_each_endpoint_counts_the_flags_it_serves(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    on_key, on_id = await boolean_flag()
    off_key, off_id = await boolean_flag(enabled=False)
    for _ in range(3):
        listed = await client.get("/api/v1/features", cookies=member.cookies)
        assert listed.status_code == 200
    for _ in range(2):
        one = await client.get(f"/api/v1/features/{on_key}", cookies=member.cookies)
        assert one.status_code == 200
    single = await client.post(
        f"/ofrep/v1/evaluate/flags/{off_key}",
        json={"context": {}},
        cookies=member.cookies,
        headers=member.headers(),
    )
    assert single.status_code == 200
    bulk = await client.post(
        "/ofrep/v1/evaluate/flags",
        json={"context": {}},
        cookies=member.cookies,
        headers=member.headers(),
    )
    assert bulk.status_code == 200
    unchanged = await client.post(
        "/ofrep/v1/evaluate/flags",
        json={"context": {}},
        cookies=member.cookies,
        headers={**member.headers(), "If-None-Match": bulk.headers["etag"]},
    )
    assert unchanged.status_code == 304  # the SDK goes on using the flags: counted
    missing = await client.get("/api/v1/features/no-such-flag", cookies=member.cookies)
    assert missing.status_code == 404  # nothing served: nothing counted
    assert await usage.flush() > 0
    assert await counted(on_id) == {"on": 3 + 2 + 2}
    assert await counted(off_id) == {"off": 3 + 1 + 2}


async def test_counts_add_up_across_flushes_and_processes(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    _, flag_id = await boolean_flag()
    other_process = UsageCounter()
    for _ in range(4):
        await client.get("/api/v1/features", cookies=member.cookies)
    await usage.flush()
    other_process.count(other_process.variant_set([(flag_id, "on")]))
    other_process.count_one(flag_id, "off")
    await other_process.flush()
    await client.get("/api/v1/features", cookies=member.cookies)
    await usage.flush()
    assert await counted(flag_id) == {"on": 6, "off": 1}
    [row] = await FeatureFlagUsage.select().where(
        FeatureFlagUsage.flag_id == flag_id, FeatureFlagUsage.variant == "on"
    )
    now = datetime.now(UTC)
    assert (row["hour"].minute, row["hour"].second, row["hour"].microsecond) == (0, 0, 0)
    assert timedelta(0) <= row["last_evaluated_at"] - row["hour"] < timedelta(hours=1)
    assert now - timedelta(seconds=10) < row["last_evaluated_at"] <= now


async def test_counts_for_a_flag_deleted_meanwhile_do_not_break_the_flush() -> None:
    _, kept = await boolean_flag()
    _, deleted = await boolean_flag()
    counter = UsageCounter()
    counter.count(counter.variant_set([(kept, "on"), (deleted, "on")]))
    await FeatureFlag.delete().where(FeatureFlag.id == deleted)
    assert await counter.flush() == 2
    assert await counted(kept) == {"on": 1}
    assert await counted(deleted) == {}
    assert counter.pending == 0


async def test_last_evaluated_at_only_moves_forward() -> None:
    _, flag_id = await boolean_flag()
    late, early = UsageCounter(), UsageCounter()
    late.count_one(flag_id, "on")
    await late.flush()
    [first] = await FeatureFlagUsage.select().where(FeatureFlagUsage.flag_id == flag_id)
    early._pending[(flag_id, int(first["hour"].timestamp()), "on")] = [
        2,
        first["last_evaluated_at"].timestamp() - 30,
    ]
    await early.flush()
    [second] = await FeatureFlagUsage.select().where(FeatureFlagUsage.flag_id == flag_id)
    assert second["evaluations"] == 3
    assert second["last_evaluated_at"] == first["last_evaluated_at"]
