"""Scheduled changes of a flag, its usage by hour, and the stale-flag candidates
(docs/FLAGS.md), for super-admins: a change is scheduled and cancelled through
`api.flags.service` and applied by api/flags/scheduler.py."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from api.auth.identity import Caller
from api.flags import queries, service
from api.flags.schemas import Schedule, ScheduleCreate, StaleFlag, Usage, given_fields


@get("/stale-flags", operation_id="listStaleFlags")
async def list_stale_flags(
    caller: NamedDependency[Caller],
    days: Annotated[int, QueryParameter(ge=1, le=3650)] = 30,
) -> list[StaleFlag]:
    """Candidates for clean-up: flags not evaluated for `days` days (a flag never evaluated
    counts from its creation), and flags whose rollout has stayed at 0 % or 100 % as long."""
    return await queries.stale_flags(days)


@get("/{key:str}/schedules", operation_id="listFlagSchedules")
async def list_schedules(caller: NamedDependency[Caller], key: FromPath[str]) -> list[Schedule]:
    """The flag's scheduled changes, by run time."""
    return await queries.list_schedules((await queries.load_flag(key)).id)


@post("/{key:str}/schedules", operation_id="createFlagSchedule", status_code=201)
async def create_schedule(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    key: FromPath[str],
    data: JSONBody[ScheduleCreate],
) -> Schedule:
    """Schedule a change, applied once at `run_at` as the super-admin who scheduled it."""
    return await service.create_schedule(key, given_fields(data), caller, request)


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
    return await service.cancel_schedule(key, schedule_id, caller, request)


@get("/{key:str}/usage", operation_id="getFlagUsage")
async def get_usage(
    caller: NamedDependency[Caller],
    key: FromPath[str],
    days: Annotated[int, QueryParameter(ge=1, le=90)] = 7,
) -> Usage:
    """Evaluations of the flag per hour and variant over the last `days` days, newest first,
    and when it was last evaluated at all."""
    return await queries.flag_usage(await queries.load_flag(key), days)
