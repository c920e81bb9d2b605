"""Scheduled flag changes (docs/FLAGS.md "Scheduled changes"), applied exactly once.

Every process looks for due changes every `SCHEDULER_INTERVAL` seconds. A due change is
claimed with `FOR UPDATE SKIP LOCKED` and applied in the same transaction that records its
status and its audit record, so however many replicas look, each change lands once: a
replica either holds the row until its commit or skips it, and a committed row is no
longer pending. The write to `feature_flags` fires the change notice, so every replica's
flag cache reloads. A change that cannot apply is marked `failed` with the reason, one bad
change never holds up the others, and a lost database only delays the next look.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
from litestar import Litestar
from piccolo.columns.combination import WhereRaw
from piccolo.querystring import QueryString

from api.auth.identity import Caller
from api.flags.service import CHANNEL
from api.platform.background import running
from api.platform.config import settings_of
from api.platform.db.audit import record_audit
from api.platform.db.changes import announce, change_transaction
from api.platform.db.readiness import DATABASE_ERRORS
from api.platform.db.sql import engine
from tables.enums import ScheduleAction, ScheduleStatus
from tables.flags import FeatureFlag, FeatureFlagSchedule
from tables.users import User

logger = logging.getLogger("api.flags.scheduler")

BATCH = 100
"""Changes applied per look at most; the rest wait for the next look, so no look runs long."""
OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)
"""The database is out of reach: nothing can be marked, so the change waits for a later look."""
REFUSALS = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError)
"""The database says this write can never happen: the change is marked failed, not retried."""
SNAPSHOT_COLUMNS = (
    FeatureFlag.id,
    FeatureFlag.key,
    FeatureFlag.enabled,
    FeatureFlag.rollout_percentage,
    FeatureFlag.default_variant,
    FeatureFlag.version,
    FeatureFlag.updated_by_id,
)


@dataclass(frozen=True, slots=True)
class Applied:
    """What happened to one claimed change."""

    schedule_id: int
    status: ScheduleStatus
    outcome: str = ""


class CannotApply(Exception):
    """The change is no longer possible; the message is the `outcome` sentence."""


def _snapshot(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "rollout_percentage": str(row["rollout_percentage"]),
    }


async def _author(user_id: int | None) -> Caller | None:
    """The super-admin who scheduled the change, as the actor of what it does; None once
    they are gone, deactivated or no longer a super-admin: their change no longer runs."""
    if user_id is None:
        return None
    rows = await User.select(User.id, User.email).where(
        (User.id == user_id) & (User.is_active == True) & (User.is_super_admin == True)  # noqa: E712
    )
    if not rows:
        return None
    # Acting for a person, not a request: `via` only says how a Caller authenticated.
    return Caller(user_id=rows[0]["id"], email=rows[0]["email"], is_super_admin=True, via="session")


async def _apply_to_flag(change: dict[str, Any], author: Caller | None) -> None:
    """The flag write and its audit record; raises `CannotApply` when it cannot happen."""
    flags = (
        await FeatureFlag.select(*SNAPSHOT_COLUMNS, FeatureFlag.variants, FeatureFlag.archived)
        .where(FeatureFlag.id == change["flag_id"])
        .lock_rows("UPDATE", of=(FeatureFlag,))
        .output(load_json=True)
    )
    if not flags:  # the foreign key makes this unreachable; said plainly all the same
        raise CannotApply("The flag no longer exists.")
    if author is None:
        raise CannotApply("Its author is no longer an active super-admin.")
    variants = flags[0].pop("variants")
    if flags[0].pop("archived"):
        raise CannotApply(f"The flag {flags[0]['key']!r} is archived.")
    before = flags[0]
    action = ScheduleAction(change["action"])
    values: dict[Any, Any] = {FeatureFlag.updated_by_id: author.user_id}
    if action is ScheduleAction.enable:
        values[FeatureFlag.enabled] = True
    elif action is ScheduleAction.disable:
        values[FeatureFlag.enabled] = False
    elif action is ScheduleAction.set_rollout:
        values[FeatureFlag.rollout_percentage] = Decimal(change["rollout_percentage"])
    else:
        variant = change["variant"]
        if not isinstance(variants, dict) or variant not in variants:
            raise CannotApply(f"The flag {before['key']!r} no longer has the variant {variant!r}.")
        values[FeatureFlag.default_variant] = variant
    rows = await (
        FeatureFlag.update(values)  # version and updated_at: the triggers
        .where(FeatureFlag.id == change["flag_id"])
        .returning(*SNAPSHOT_COLUMNS)
    )
    announce(CHANNEL)
    await record_audit(
        action=f"feature_flag.scheduled_{action.value}",
        resource_type="feature_flag",
        resource_id=before["key"],
        actor=author,
        before=_snapshot(before),
        after={**_snapshot(rows[0]), "schedule_id": change["id"]},
    )


async def apply_next_due_change(
    skip: Sequence[int] = (), claimed: list[int] | None = None
) -> Applied | None:
    """Claim the earliest due pending change that no other transaction holds (ids in `skip`
    aside), apply it and record its status, all in one transaction; None when none is due.
    The claimed id is appended to `claimed` first, so a caller knows it even on error."""
    # change_transaction: this process's flag cache gets the change at commit (announce).
    async with change_transaction(), engine().transaction() as transaction:
        query = (
            FeatureFlagSchedule.select(
                FeatureFlagSchedule.id,
                FeatureFlagSchedule.flag_id,
                FeatureFlagSchedule.action,
                FeatureFlagSchedule.rollout_percentage,
                FeatureFlagSchedule.variant,
                FeatureFlagSchedule.created_by_id,
            )
            .where(
                FeatureFlagSchedule.status == ScheduleStatus.pending.value,
                WhereRaw("run_at <= now()"),  # the database's clock, the same for every replica
            )
            .order_by(FeatureFlagSchedule.run_at, FeatureFlagSchedule.id)
            .limit(1)
            .lock_rows("UPDATE", skip_locked=True, of=(FeatureFlagSchedule,))
        )
        if skip:
            query = query.where(FeatureFlagSchedule.id.not_in(list(skip)))
        rows = await query
        if not rows:
            return None
        change = rows[0]
        if claimed is not None:
            claimed.append(change["id"])
        author = await _author(change["created_by_id"])
        savepoint: Any = await transaction.savepoint()  # piccolo's Savepoint is untyped
        try:
            await _apply_to_flag(change, author)
            result = Applied(change["id"], ScheduleStatus.applied)
        except CannotApply as reason:
            await savepoint.rollback_to()
            result = Applied(change["id"], ScheduleStatus.failed, str(reason))
        except REFUSALS as error:
            # The database refused the write (a constraint added since): the change fails.
            # Anything else (a timeout, a deadlock, an outage) leaves it for a later look.
            await savepoint.rollback_to()
            result = Applied(
                change["id"], ScheduleStatus.failed, f"The database refused the change: {error}"
            )
        if result.status is ScheduleStatus.failed:
            await record_audit(
                action="feature_flag_schedule.failed",
                resource_type="feature_flag_schedule",
                resource_id=change["id"],
                actor=author,
                before={"status": ScheduleStatus.pending.value},
                after={"status": result.status.value, "outcome": result.outcome},
            )
        # Applied: the schedule row's trigger records this status change as the author's.
        await FeatureFlagSchedule.update(
            {
                FeatureFlagSchedule.status: result.status.value,
                FeatureFlagSchedule.outcome: result.outcome,
                FeatureFlagSchedule.applied_at: QueryString("now()"),
            }
        ).where(FeatureFlagSchedule.id == change["id"])
    return result


async def run_due_changes(limit: int = BATCH) -> list[Applied]:
    """Apply every due change (up to `limit`), each in its own transaction. A change that
    fails for a reason of its own is logged and left for a later look; an outage raises."""
    done: list[Applied] = []
    attempted: list[int] = []
    while len(attempted) < limit:
        claimed: list[int] = []
        try:
            result = await apply_next_due_change(attempted, claimed)
        except OUTAGES:
            raise
        except Exception:
            if not claimed:
                raise
            logger.exception("scheduled change %s could not be applied", claimed[0])
            attempted.extend(claimed)
            continue
        if result is None:
            break
        attempted.append(result.schedule_id)
        done.append(result)
        logger.info(
            "scheduled change %s %s%s",
            result.schedule_id,
            result.status.value,
            f": {result.outcome}" if result.outcome else "",
        )
    return done


async def run_scheduler(interval: float) -> None:
    """Look for due changes every `interval` seconds until cancelled; never dies of an error."""
    while True:
        try:
            await run_due_changes()
        except DATABASE_ERRORS as error:
            logger.warning("scheduled changes wait: %s: %s", type(error).__name__, error)
        except Exception:
            logger.exception("scheduled changes wait: unexpected error")
        await asyncio.sleep(interval)


@asynccontextmanager
async def flag_scheduler(app: Litestar) -> AsyncIterator[None]:
    """The scheduler of this process, from start-up to shutdown (after the pool opens)."""
    async with running(run_scheduler(settings_of(app).scheduler_interval)):
        yield
