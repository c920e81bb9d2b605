"""Scheduled changes and usage counts with real API processes (docs/FLAGS.md): two replicas
looking for due changes apply each exactly once, and a process stopped with SIGTERM writes
every evaluation it counted before it exits."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from api.platform.db.sql import fetch
from tables.audit import AuditLog
from tables.flags import FeatureFlag, FeatureFlagSchedule, FeatureFlagUsage
from tests.support.auth import make_user, sign_in
from tests.support.data import unique
from tests.support.pgbouncer import PgBouncer
from tests.support.processes import AppProcess, start_app

pytestmark = pytest.mark.e2e

CHANGES = 30


@pytest.fixture(name="eager_replicas")
def fx_eager_replicas(database: str, pooler: PgBouncer) -> Iterator[tuple[AppProcess, AppProcess]]:
    """Two replicas through the pooler, each looking for due changes every 50 ms."""
    env = {"DATABASE_DIRECT_URL": database, "SCHEDULER_INTERVAL": "0.05"}
    through_pooler = pooler.url_for(database)
    first, second = start_app(through_pooler, env), start_app(through_pooler, env)
    yield first, second
    first.stop()
    second.stop()


async def test_two_replicas_apply_each_due_change_exactly_once(
    eager_replicas: tuple[AppProcess, AppProcess],
) -> None:
    author = await make_user(super_admin=True)
    viewer = await sign_in()
    keys = [unique("replicated-schedule") for _ in range(CHANGES)]
    for key in keys:
        await FeatureFlag(key=key, name=key, enabled=False, rollout_percentage=Decimal(100)).save()
    flags = {
        row["key"]: row
        for row in await FeatureFlag.select(
            FeatureFlag.id, FeatureFlag.key, FeatureFlag.version
        ).where(FeatureFlag.key.is_in(keys))
    }
    for replica in eager_replicas:  # both have loaded and cached the flags, switched off
        served = httpx.get(f"{replica.base_url}/api/v1/features", cookies=viewer.cookies).json()
        assert {f["key"]: f["value"] for f in served["flags"]}[keys[0]] is False
    # All due at once: both replicas, looking every 50 ms, contend for them.
    await fetch(
        "INSERT INTO feature_flag_schedules (flag_id, action, run_at, created_by_id)"
        " SELECT id, 'enable', now(), $2 FROM feature_flags WHERE key = ANY($1::text[])",
        keys,
        author,
    )
    flag_ids = [flag["id"] for flag in flags.values()]
    deadline = time.monotonic() + 15
    while await FeatureFlagSchedule.count().where(
        FeatureFlagSchedule.flag_id.is_in(flag_ids), FeatureFlagSchedule.status == "pending"
    ):
        assert time.monotonic() < deadline, "the replicas did not apply the due changes"
        time.sleep(0.05)
    statuses = await FeatureFlagSchedule.select(FeatureFlagSchedule.status).where(
        FeatureFlagSchedule.flag_id.is_in(flag_ids)
    )
    assert [row["status"] for row in statuses] == ["applied"] * CHANGES
    for key, before in flags.items():
        [after] = await FeatureFlag.select(
            FeatureFlag.enabled, FeatureFlag.version, FeatureFlag.updated_by_id
        ).where(FeatureFlag.id == before["id"])
        assert after == {"enabled": True, "version": before["version"] + 1, "updated_by_id": author}
        records = await AuditLog.select(AuditLog.action, AuditLog.actor_id).where(
            AuditLog.resource_type == "feature_flag",
            AuditLog.resource_id == key,
            AuditLog.action == "feature_flag.scheduled_enable",
        )
        assert records == [{"action": "feature_flag.scheduled_enable", "actor_id": author}]
    for replica in eager_replicas:  # the change notice reached both flag caches
        deadline = time.monotonic() + 1
        while True:
            served = httpx.get(f"{replica.base_url}/api/v1/features", cookies=viewer.cookies)
            values = {f["key"]: f["value"] for f in served.json()["flags"]}
            if all(values[key] is True for key in keys):
                break
            assert time.monotonic() < deadline, "a replica still served a flag switched off"
            time.sleep(0.02)


async def test_sigterm_writes_every_counted_evaluation_before_the_process_exits(
    database: str,
) -> None:
    key = unique("counted-at-exit")
    flag = FeatureFlag(key=key, name=key, enabled=True, rollout_percentage=Decimal(100))
    await flag.save()
    member = await sign_in()
    # No periodic flush in this test's time: only the one at shutdown can write the counts.
    app = start_app(database, {"USAGE_FLUSH_SECONDS": "3600"})
    requests = 25
    try:
        async with httpx.AsyncClient(base_url=app.base_url, cookies=member.cookies) as client:
            for n in range(requests):
                if n % 5 == 4:
                    response = await client.get(f"/api/v1/features/{key}")
                else:
                    response = await client.get("/api/v1/features")
                assert response.status_code == 200
        assert await FeatureFlagUsage.count().where(FeatureFlagUsage.flag_id == flag.id) == 0
        app.process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (so -SIGTERM).
        assert app.process.wait(timeout=20) in (0, -signal.SIGTERM)
    except (AssertionError, subprocess.TimeoutExpired):
        app.stop()
        raise
    rows = await FeatureFlagUsage.select(
        FeatureFlagUsage.variant, FeatureFlagUsage.evaluations
    ).where(FeatureFlagUsage.flag_id == flag.id)
    assert rows == [{"variant": "on", "evaluations": requests}]
