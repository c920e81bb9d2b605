"""Scheduled flag changes (docs/FLAGS.md "Scheduled changes"): applied once, at their time,
as their author, audited; a change that cannot apply fails with a reason; one bad change
holds up no other; a lost database only delays the next look."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from api.flags import scheduler
from api.flags.scheduler import apply_next_due_change, run_due_changes, run_scheduler
from tables.audit import AuditLog
from tables.flags import FeatureFlag, FeatureFlagSchedule
from tables.users import User
from tests.support.auth import make_user
from tests.support.data import unique

PAST = timedelta(seconds=-1)


async def variant_flag(*, enabled: bool = False) -> dict[str, Any]:
    key = unique("scheduled")
    flag = FeatureFlag(
        key=key,
        name=key,
        enabled=enabled,
        flag_type="string",
        variants={"blue": "#00f", "green": "#0f0", "off": "none"},
        default_variant="blue",
        off_variant="off",
    )
    await flag.save()
    return await flag_row(int(flag.id))


async def flag_row(flag_id: int) -> dict[str, Any]:
    rows = await FeatureFlag.select().where(FeatureFlag.id == flag_id).output(load_json=True)
    return rows[0]


async def schedule(
    flag_id: int,
    action: str,
    *,
    author: int | None,
    at: timedelta = PAST,
    rollout: str | None = None,
    variant: str | None = None,
) -> int:
    row = FeatureFlagSchedule(
        flag_id=flag_id,
        action=action,
        rollout_percentage=Decimal(rollout) if rollout is not None else None,
        variant=variant,
        run_at=datetime.now(UTC) + at,
        created_by_id=author,
    )
    await row.save()
    return int(row.id)


async def schedule_row(schedule_id: int) -> dict[str, Any]:
    rows = await FeatureFlagSchedule.select().where(FeatureFlagSchedule.id == schedule_id)
    return rows[0]


async def audit_rows(resource_type: str, resource_id: str) -> list[dict[str, Any]]:
    return (
        await AuditLog.select()
        .where(AuditLog.resource_type == resource_type, AuditLog.resource_id == resource_id)
        .order_by(AuditLog.id)
        .output(load_json=True)
    )


@pytest.fixture(autouse=True)
async def no_other_due_changes() -> None:
    """Each test sees only its own due changes (earlier tests leave none pending)."""
    await FeatureFlagSchedule.update({FeatureFlagSchedule.status: "cancelled"}).where(
        FeatureFlagSchedule.status == "pending"
    )


@pytest.mark.parametrize(
    ("action", "argument", "column", "expected"),
    [
        ("enable", {}, "enabled", True),
        ("set_rollout", {"rollout": "37.5"}, "rollout_percentage", Decimal("37.50")),
        ("set_default_variant", {"variant": "green"}, "default_variant", "green"),
    ],
)
async def test_a_due_change_is_applied_as_its_author_and_audited(
    action: str, argument: dict[str, str], column: str, expected: object
) -> None:
    author = await make_user(super_admin=True)
    flag = await variant_flag()
    schedule_id = await schedule(flag["id"], action, author=author, **argument)
    [result] = await run_due_changes()
    assert (result.schedule_id, result.status) == (schedule_id, "applied")
    after = await flag_row(flag["id"])
    assert after[column] == expected
    assert after["version"] == flag["version"] + 1
    assert after["updated_by_id"] == author
    done = await schedule_row(schedule_id)
    assert (done["status"], done["outcome"]) == ("applied", "")
    assert done["applied_at"] is not None
    records = [r for r in await audit_rows("feature_flag", flag["key"]) if r["actor_id"] == author]
    assert [r["action"] for r in records] == [f"feature_flag.scheduled_{action}"]
    assert records[0]["after"]["schedule_id"] == schedule_id
    assert records[0]["after"]["version"] == flag["version"] + 1
    trail = await audit_rows("feature_flag_schedule", str(schedule_id))
    assert trail[-1]["action"] == "feature_flag_schedule.update"
    assert trail[-1]["actor_id"] == author
    assert trail[-1]["after"]["status"] == "applied"


async def test_disable_switches_the_flag_off_and_the_served_answer_follows() -> None:
    from api.flags.store import flag_cache

    author = await make_user(super_admin=True)
    flag = await variant_flag(enabled=True)
    await schedule(flag["id"], "disable", author=author)
    assert [r.status for r in await run_due_changes()] == ["applied"]
    assert (await flag_row(flag["id"]))["enabled"] is False
    flag_cache.invalidate()  # what the feature_flags NOTIFY does in a running process
    assert (await flag_cache.flags())[flag["key"]].enabled is False


async def test_a_change_not_yet_due_or_not_pending_is_left_alone() -> None:
    author = await make_user(super_admin=True)
    flag = await variant_flag()
    later = await schedule(flag["id"], "enable", author=author, at=timedelta(hours=1))
    cancelled = await schedule(flag["id"], "enable", author=author)
    await FeatureFlagSchedule.update({FeatureFlagSchedule.status: "cancelled"}).where(
        FeatureFlagSchedule.id == cancelled
    )
    assert await run_due_changes() == []
    assert (await flag_row(flag["id"]))["version"] == flag["version"]
    assert (await schedule_row(later))["status"] == "pending"
    assert (await schedule_row(cancelled))["status"] == "cancelled"


async def test_a_removed_variant_fails_the_change_with_a_reason_audited() -> None:
    author = await make_user(super_admin=True)
    flag = await variant_flag()
    schedule_id = await schedule(flag["id"], "set_default_variant", author=author, variant="green")
    await FeatureFlag.update({FeatureFlag.variants: {"blue": "#00f", "off": "none"}}).where(
        FeatureFlag.id == flag["id"]
    )
    before = await flag_row(flag["id"])
    [result] = await run_due_changes()
    assert result.status == "failed"
    row = await schedule_row(schedule_id)
    assert row["status"] == "failed"
    assert row["outcome"] == f"The flag {flag['key']!r} no longer has the variant 'green'."
    assert row["applied_at"] is not None
    after = await flag_row(flag["id"])
    assert (after["default_variant"], after["version"]) == ("blue", before["version"])
    [record] = (await audit_rows("feature_flag_schedule", str(schedule_id)))[-1:]
    assert (record["action"], record["actor_id"]) == ("feature_flag_schedule.failed", author)
    assert record["after"] == {"status": "failed", "outcome": row["outcome"]}


async def test_changes_are_applied_in_time_order_and_each_once() -> None:
    author = await make_user(super_admin=True)
    flag = await variant_flag()
    first = await schedule(flag["id"], "set_rollout", author=author, rollout="10", at=3 * PAST)
    second = await schedule(flag["id"], "set_rollout", author=author, rollout="20")
    results = await run_due_changes()
    assert [r.schedule_id for r in results] == [first, second]
    after = await flag_row(flag["id"])
    assert (after["rollout_percentage"], after["version"]) == (Decimal("20"), flag["version"] + 2)
    assert await run_due_changes() == []


async def test_two_ticks_racing_on_separate_connections_apply_each_change_once() -> None:
    author = await make_user(super_admin=True)
    flags = [await variant_flag() for _ in range(20)]
    ids = [await schedule(f["id"], "enable", author=author) for f in flags]
    first, second = await asyncio.gather(run_due_changes(), run_due_changes())
    claimed = [r.schedule_id for r in first + second]
    assert sorted(claimed) == sorted(ids)  # every change once, by one tick or the other
    for flag in flags:
        after = await flag_row(flag["id"])
        assert (after["enabled"], after["version"]) == (True, flag["version"] + 1)
        records = await audit_rows("feature_flag", flag["key"])
        assert [r["action"] for r in records].count("feature_flag.scheduled_enable") == 1


async def test_a_locked_change_is_skipped_not_waited_for() -> None:
    """While one transaction holds a due change, another look passes over it at once."""
    author = await make_user(super_admin=True)
    held_flag, free_flag = await variant_flag(), await variant_flag()
    held = await schedule(held_flag["id"], "enable", author=author, at=2 * PAST)
    free = await schedule(free_flag["id"], "enable", author=author)
    claimed = asyncio.Event()
    release = asyncio.Event()
    original = scheduler._apply_to_flag

    async def slow(change: dict[str, Any], actor: Any) -> None:
        if change["id"] == held:
            claimed.set()
            await release.wait()
        await original(change, actor)

    scheduler._apply_to_flag = slow  # type: ignore[assignment]
    try:
        holder = asyncio.create_task(apply_next_due_change())
        await claimed.wait()
        other = await asyncio.wait_for(apply_next_due_change(), timeout=5)
        assert other is not None
        assert other.schedule_id == free
        release.set()
        done = await holder
        assert done is not None
        assert done.schedule_id == held
    finally:
        scheduler._apply_to_flag = original  # type: ignore[assignment]


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug"), asyncpg.QueryCanceledError("lock wait: statement timeout")],
    ids=["bug", "timeout"],
)
async def test_an_error_in_one_change_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    author = await make_user(super_admin=True)
    broken_flag, fine_flag = await variant_flag(), await variant_flag()
    broken = await schedule(broken_flag["id"], "enable", author=author, at=2 * PAST)
    fine = await schedule(fine_flag["id"], "enable", author=author)
    original = scheduler._apply_to_flag

    async def buggy(change: dict[str, Any], actor: Any) -> None:
        if change["id"] == broken:
            raise error
        await original(change, actor)

    monkeypatch.setattr(scheduler, "_apply_to_flag", buggy)
    with caplog.at_level(logging.ERROR, "api.flags.scheduler"):
        results = await run_due_changes()
    assert [r.schedule_id for r in results] == [fine]
    assert (await schedule_row(broken))["status"] == "pending"  # rolled back: tried again later
    assert (await flag_row(broken_flag["id"]))["version"] == broken_flag["version"]
    assert f"scheduled change {broken} could not be applied" in caplog.text


async def test_a_write_the_database_refuses_fails_that_change_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    author = await make_user(super_admin=True)
    refused_flag, fine_flag = await variant_flag(), await variant_flag()
    refused = await schedule(refused_flag["id"], "enable", author=author, at=2 * PAST)
    fine = await schedule(fine_flag["id"], "enable", author=author)
    original = scheduler._apply_to_flag

    async def out_of_range(change: dict[str, Any], actor: Any) -> None:
        if change["id"] != refused:
            return await original(change, actor)
        await FeatureFlag.update({FeatureFlag.rollout_percentage: Decimal(150)}).where(
            FeatureFlag.id == change["flag_id"]
        )  # a CHECK constraint says no, as a constraint added later might

    monkeypatch.setattr(scheduler, "_apply_to_flag", out_of_range)
    results = await run_due_changes()
    assert [(r.schedule_id, r.status) for r in results] == [(refused, "failed"), (fine, "applied")]
    row = await schedule_row(refused)
    assert row["status"] == "failed"
    assert row["outcome"].startswith("The database refused the change:")
    assert (await flag_row(refused_flag["id"]))["version"] == refused_flag["version"]


async def test_the_loop_survives_a_lost_database_and_looks_again(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks = 0
    fourth = asyncio.Event()

    async def unreachable(limit: int = 100) -> list[Any]:
        nonlocal looks
        looks += 1
        if looks == 1:
            raise ConnectionRefusedError("no database")
        if looks == 2:
            raise RuntimeError("a bug")
        if looks == 4:
            fourth.set()
        return []

    monkeypatch.setattr(scheduler, "run_due_changes", unreachable)
    with caplog.at_level(logging.WARNING, "api.flags.scheduler"):
        task = asyncio.create_task(run_scheduler(0.01))
        await asyncio.wait_for(fourth.wait(), timeout=5)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "scheduled changes wait: ConnectionRefusedError" in caplog.text
    assert "unexpected error" in caplog.text


@pytest.mark.parametrize("author_now", ["gone", "deactivated", "demoted"])
async def test_a_change_runs_only_while_its_author_is_an_active_super_admin(
    author_now: str,
) -> None:
    author = await make_user(super_admin=True)
    flag = await variant_flag()
    schedule_id = await schedule(flag["id"], "enable", author=author)
    if author_now == "gone":
        await User.delete().where(User.id == author)  # created_by_id is set to NULL
    elif author_now == "deactivated":
        await User.update({User.is_active: False}).where(User.id == author)
    else:
        await User.update({User.is_super_admin: False}).where(User.id == author)
    [result] = await run_due_changes()
    assert (result.status, result.outcome) == (
        "failed",
        "Its author is no longer an active super-admin.",
    )
    after = await flag_row(flag["id"])
    assert (after["enabled"], after["version"]) == (False, flag["version"])
    assert (await schedule_row(schedule_id))["status"] == "failed"


async def test_a_change_to_an_archived_flag_fails() -> None:
    author = await make_user(super_admin=True)
    flag = await variant_flag()
    await FeatureFlag.update({FeatureFlag.archived: True}).where(FeatureFlag.id == flag["id"])
    schedule_id = await schedule(flag["id"], "enable", author=author)
    [result] = await run_due_changes()
    assert (result.status, result.outcome) == ("failed", f"The flag {flag['key']!r} is archived.")
    assert (await flag_row(flag["id"]))["enabled"] is False
    assert (await schedule_row(schedule_id))["outcome"] == result.outcome


async def test_a_due_change_that_changes_nothing_writes_nothing_to_the_flag() -> None:
    """Through the flags service like any writer: no version bump, no flag audit record; the
    change is applied with an outcome saying so, recorded as its author's."""
    author = await make_user(super_admin=True)
    flag = await variant_flag(enabled=True)
    schedule_id = await schedule(flag["id"], "enable", author=author)
    [result] = await run_due_changes()
    assert (result.status, result.outcome) == ("applied", scheduler.NOTHING_TO_CHANGE)
    after = await flag_row(flag["id"])
    assert (after["version"], after["updated_at"]) == (flag["version"], flag["updated_at"])
    flag_records = await audit_rows("feature_flag", flag["key"])
    assert "feature_flag.scheduled_enable" not in [r["action"] for r in flag_records]
    [record] = (await audit_rows("feature_flag_schedule", str(schedule_id)))[-1:]
    assert (record["action"], record["actor_id"]) == ("feature_flag_schedule.applied", author)
    assert record["after"] == {"status": "applied", "outcome": scheduler.NOTHING_TO_CHANGE}


async def test_a_scheduled_change_is_audited_as_the_schedulers_work_for_its_author() -> None:
    author = await make_user(super_admin=True)
    flag = await variant_flag()
    schedule_id = await schedule(flag["id"], "set_rollout", author=author, rollout="12.5")
    [result] = await run_due_changes()
    assert result.status == "applied"
    [record] = [
        r
        for r in await audit_rows("feature_flag", flag["key"])
        if r["action"] == "feature_flag.scheduled_set_rollout"
    ]
    assert record["actor_id"] == author
    assert record["after"]["schedule_id"] == schedule_id
    assert record["after"]["applied_by"] == "scheduler"
    assert record["before"]["rollout_percentage"] == "0.00"
    assert record["after"]["rollout_percentage"] == "12.50"


async def test_a_due_change_the_rules_refuse_fails_with_their_sentence() -> None:
    """The flag's definition was broken around the rules (psql): the service refuses to
    write it, and the change fails with the rules' sentence instead of a 500 or a retry."""
    author = await make_user(super_admin=True)
    flag = await variant_flag()
    schedule_id = await schedule(flag["id"], "set_default_variant", author=author, variant="green")
    await FeatureFlag.update({FeatureFlag.rollout_split: {"blue": 0}}).where(
        FeatureFlag.id == flag["id"]
    )
    before = await flag_row(flag["id"])
    [result] = await run_due_changes()
    assert result.status == "failed"
    assert result.outcome == (
        f"The flag {flag['key']!r} refused the change:"
        " rollout_split: the weights must add up to more than 0"
    )
    assert (await flag_row(flag["id"]))["version"] == before["version"]
    assert (await schedule_row(schedule_id))["status"] == "failed"
    assert await run_due_changes() == []
