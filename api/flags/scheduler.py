"""Scheduled flag changes (docs/FLAGS.md "Scheduled changes"), applied exactly once.

Every process looks for due changes every `SCHEDULER_INTERVAL` seconds. A due change is
claimed with `FOR UPDATE SKIP LOCKED` and applied in the same transaction that records its
status, so however many replicas look, each change lands once: a replica either holds the
row until its commit or skips it, and a committed row is no longer pending.

The scheduler writes no flag itself: it applies a due change through the flags service
(`api.flags.service.apply_scheduled_change` → `update_flag`), with the change's author as
the actor — the same lock, version compare, validation, no-op-writes-nothing, audit
(`feature_flag.scheduled_<action>`, naming the schedule and `applied_by: scheduler`) and
announcement as any writer. A change that cannot apply — its author no longer an active
super-admin, its flag archived, the rules or the database refusing it — is marked `failed`
with the reason (audited), one bad change never holds up the others, and a lost database
only delays the next look.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from litestar import Litestar
from prometheus_client import Counter, Gauge

from api.auth.identity import Caller
from api.flags import queries, service
from api.platform.background import running
from api.platform.config import settings_of
from api.platform.db.changes import change_transaction
from api.platform.db.readiness import DATABASE_ERRORS
from api.platform.db.sql import savepoint
from api.platform.http.errors import AppError, NotFound
from tables.enums import ScheduleAction, ScheduleStatus

logger = logging.getLogger("api.flags.scheduler")

BATCH = 100
SCHEDULED = Gauge(
    "marketedge_scheduled_changes",
    "Scheduled flag changes waiting, by status: pending, or overdue (due over a minute ago).",
    ["status"],
    multiprocess_mode="livemax",  # every process counts the same table
)
APPLIED = Counter(
    "marketedge_scheduled_changes_applied",
    "Scheduled changes this process settled, by outcome: applied, failed, or error (retried).",
    ["outcome"],
)
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
NOTHING_TO_CHANGE = "The flag already was so; nothing was written."


@dataclass(frozen=True, slots=True)
class Applied:
    """What happened to one claimed change."""

    schedule_id: int
    status: ScheduleStatus
    outcome: str = ""


class CannotApply(Exception):
    """The change is no longer possible; the message is the `outcome` sentence."""


async def _author(user_id: int | None) -> Caller | None:
    """The super-admin who scheduled the change, as the actor of what it does; None once
    they are gone, deactivated or no longer a super-admin: their change no longer runs."""
    row = await queries.active_super_admin(user_id)
    if row is None:
        return None
    # Acting for a person, not a request: `via` only says how a Caller authenticated.
    return Caller(user_id=row["id"], email=row["email"], is_super_admin=True, via="session")


def _refused(key: str, change: dict[str, Any], refusal: AppError) -> str:
    """The outcome sentence for a change the flags rules refuse now."""
    field = (refusal.extra or {}).get("field")
    if ScheduleAction(change["action"]) is ScheduleAction.set_default_variant and field in (
        "default_variant",
        "variant",
    ):
        return f"The flag {key!r} no longer has the variant {change['variant']!r}."
    return f"The flag {key!r} refused the change: {refusal.detail}"


async def _apply_to_flag(change: dict[str, Any], author: Caller | None) -> bool:
    """Apply the change through the flags service; whether it wrote the flag. Raises
    `CannotApply` when it cannot happen."""
    try:
        flag = await queries.load_flag(change["flag_id"], lock=True)
    except NotFound:  # the foreign key makes this unreachable; said plainly all the same
        raise CannotApply("The flag no longer exists.") from None
    if author is None:
        raise CannotApply("Its author is no longer an active super-admin.")
    if flag.archived:
        raise CannotApply(f"The flag {flag.key!r} is archived.")
    try:
        return await service.apply_scheduled_change(flag, change, author)
    except AppError as refusal:
        raise CannotApply(_refused(flag.key, change, refusal)) from None


async def apply_next_due_change(
    skip: Sequence[int] = (), claimed: list[int] | None = None
) -> Applied | None:
    """Claim the earliest due pending change that no other transaction holds (ids in `skip`
    aside), apply it and record its status, all in one transaction; None when none is due.
    The claimed id is appended to `claimed` first, so a caller knows it even on error."""
    # change_transaction: this process's flag cache gets the change at commit (announce).
    async with change_transaction():
        change = await queries.claim_due_schedule(list(skip))
        if change is None:
            return None
        if claimed is not None:
            claimed.append(change["id"])
        author = await _author(change["created_by_id"])
        wrote = False
        try:
            async with savepoint():  # a refused change leaves nothing of its own behind
                wrote = await _apply_to_flag(change, author)
            outcome = "" if wrote else NOTHING_TO_CHANGE
            result = Applied(change["id"], ScheduleStatus.applied, outcome)
        except CannotApply as reason:
            result = Applied(change["id"], ScheduleStatus.failed, str(reason))
        except REFUSALS as error:
            # The database refused the write (a constraint added since): the change fails.
            # Anything else (a timeout, a deadlock, an outage) leaves it for a later look.
            result = Applied(
                change["id"], ScheduleStatus.failed, f"The database refused the change: {error}"
            )
        await service.record_schedule_outcome(
            change["id"], result.status, result.outcome, author, wrote=wrote
        )
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
            APPLIED.labels("error").inc()
            attempted.extend(claimed)
            continue
        if result is None:
            break
        attempted.append(result.schedule_id)
        done.append(result)
        APPLIED.labels(result.status.value).inc()
        logger.info(
            "scheduled change %s %s%s",
            result.schedule_id,
            result.status.value,
            f": {result.outcome}" if result.outcome else "",
        )
    return done


async def count_schedules() -> None:
    """Set the scheduled-changes gauge from the table (once per look, not per scrape)."""
    pending, overdue = await queries.count_pending_schedules()
    SCHEDULED.labels("pending").set(pending)
    SCHEDULED.labels("overdue").set(overdue)


async def run_scheduler(interval: float) -> None:
    """Look for due changes every `interval` seconds until cancelled; never dies of an error."""
    while True:
        try:
            await run_due_changes()
            await count_schedules()
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
