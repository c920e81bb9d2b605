"""Scheduled changes of a flag, its usage by hour, and the stale-flag candidates
(docs/FLAGS.md), for super-admins: a change is scheduled and cancelled here and applied
by api/flags/scheduler.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from api.auth.identity import Caller
from api.flags.admin_shared import load_flag
from api.flags.rules import (
    validate_schedule,
    validate_schedule_change,
)
from api.flags.stale import StaleFlag, stale_flags
from api.platform.db.audit import audited_change
from api.platform.http.errors import NotFound
from tables.enums import ScheduleStatus
from tables.flags import (
    FeatureFlagSchedule,
    FeatureFlagUsage,
)

SCHEDULE_COLUMNS = (
    FeatureFlagSchedule.id,
    FeatureFlagSchedule.flag_id,
    FeatureFlagSchedule.action,
    FeatureFlagSchedule.rollout_percentage,
    FeatureFlagSchedule.variant,
    FeatureFlagSchedule.run_at,
    FeatureFlagSchedule.status,
    FeatureFlagSchedule.note,
    FeatureFlagSchedule.outcome,
    FeatureFlagSchedule.applied_at,
    FeatureFlagSchedule.created_by_id,
    FeatureFlagSchedule.created_at,
    FeatureFlagSchedule.updated_at,
)


class Schedule(msgspec.Struct):
    id: int
    flag_id: int
    action: str
    rollout_percentage: Decimal | None
    variant: str | None
    run_at: datetime
    status: str
    note: str
    outcome: str
    applied_at: datetime | None
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime


class ScheduleCreate(msgspec.Struct, forbid_unknown_fields=True):
    """`set_rollout` takes `rollout_percentage`, `set_default_variant` takes `variant`;
    `enable` and `disable` take neither."""

    action: str
    run_at: datetime
    rollout_percentage: Decimal | None = None
    variant: str | None = None
    note: str = ""


class UsageHour(msgspec.Struct):
    hour: datetime
    variant: str
    evaluations: int
    last_evaluated_at: datetime


class Usage(msgspec.Struct):
    key: str
    last_evaluated_at: datetime | None
    hours: list[UsageHour]


@get("/stale-flags", operation_id="listStaleFlags")
async def list_stale_flags(
    caller: NamedDependency[Caller],
    days: Annotated[int, QueryParameter(ge=1, le=3650)] = 30,
) -> list[StaleFlag]:
    """Candidates for clean-up: flags not evaluated for `days` days (a flag never evaluated
    counts from its creation), and flags whose rollout has stayed at 0 % or 100 % as long."""
    return await stale_flags(days)


# ---- scheduled changes ---------------------------------------------------------------------


def _schedule(row: dict[str, Any]) -> Schedule:
    return msgspec.convert(row, Schedule)


@get("/{key:str}/schedules", operation_id="listFlagSchedules")
async def list_schedules(caller: NamedDependency[Caller], key: FromPath[str]) -> list[Schedule]:
    """The flag's scheduled changes, by run time."""
    flag = await load_flag(key)
    rows = (
        await FeatureFlagSchedule.select(*SCHEDULE_COLUMNS)
        .where(FeatureFlagSchedule.flag_id == flag.id)
        .order_by(FeatureFlagSchedule.run_at)
        .order_by(FeatureFlagSchedule.id)
    )
    return [_schedule(row) for row in rows]


@post("/{key:str}/schedules", operation_id="createFlagSchedule", status_code=201)
async def create_schedule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[ScheduleCreate],
) -> Schedule:
    """Schedule a change, applied once at `run_at` as the super-admin who scheduled it."""
    async with audited_change(
        "feature_flag_schedule.created", "feature_flag_schedule", actor=caller, connection=request
    ) as change:
        flag = await load_flag(key, lock=True)
        cleaned = validate_schedule(**msgspec.structs.asdict(data), variants=flag.variants)
        row = FeatureFlagSchedule(**cleaned, flag_id=flag.id, created_by_id=caller.user_id)
        rows = await FeatureFlagSchedule.insert(row).returning(*SCHEDULE_COLUMNS)
        schedule = change.after = _schedule(rows[0])
        change.resource_id = schedule.id
    return schedule


@post(
    "/{key:str}/schedules/{schedule_id:int}/cancel",
    operation_id="cancelFlagSchedule",
    status_code=200,
)
async def cancel_schedule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    schedule_id: FromPath[int],
) -> Schedule:
    """Cancel a pending change (409 once it was applied, failed or cancelled)."""
    async with audited_change(
        "feature_flag_schedule.cancelled",
        "feature_flag_schedule",
        actor=caller,
        connection=request,
        resource_id=schedule_id,
    ) as change:
        flag = await load_flag(key)
        rows = await (
            FeatureFlagSchedule.select(*SCHEDULE_COLUMNS)
            .where(
                (FeatureFlagSchedule.id == schedule_id) & (FeatureFlagSchedule.flag_id == flag.id)
            )
            .lock_rows()  # the scheduler claims due rows with SKIP LOCKED: never both
        )
        if not rows:
            raise NotFound(
                "No such scheduled change for this flag", extra={"schedule_id": schedule_id}
            )
        before = change.before = _schedule(rows[0])
        validate_schedule_change(before.status, {"status": ScheduleStatus.cancelled})
        rows = await (
            FeatureFlagSchedule.update({FeatureFlagSchedule.status: ScheduleStatus.cancelled})
            .where(FeatureFlagSchedule.id == schedule_id)
            .returning(*SCHEDULE_COLUMNS)
        )
        schedule = change.after = _schedule(rows[0])
    return schedule


# ---- usage ---------------------------------------------------------------------------------


@get("/{key:str}/usage", operation_id="getFlagUsage")
async def get_usage(
    caller: NamedDependency[Caller],
    key: FromPath[str],
    days: Annotated[int, QueryParameter(ge=1, le=90)] = 7,
) -> Usage:
    """Evaluations of the flag per hour and variant over the last `days` days, newest first,
    and when it was last evaluated at all."""
    flag = await load_flag(key)
    since = datetime.now(UTC) - timedelta(days=days)
    rows = (
        await FeatureFlagUsage.select(
            FeatureFlagUsage.hour,
            FeatureFlagUsage.variant,
            FeatureFlagUsage.evaluations,
            FeatureFlagUsage.last_evaluated_at,
        )
        .where((FeatureFlagUsage.flag_id == flag.id) & (FeatureFlagUsage.hour >= since))
        .order_by(FeatureFlagUsage.hour, ascending=False)
        .order_by(FeatureFlagUsage.variant)
    )
    latest = (
        await FeatureFlagUsage.select(FeatureFlagUsage.last_evaluated_at)
        .where(FeatureFlagUsage.flag_id == flag.id)
        .order_by(FeatureFlagUsage.last_evaluated_at, ascending=False)
        .first()
    )
    return Usage(
        key=flag.key,
        last_evaluated_at=latest["last_evaluated_at"] if latest else None,
        hours=[msgspec.convert(row, UsageHour) for row in rows],
    )
