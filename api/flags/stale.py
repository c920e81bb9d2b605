"""Stale-flag candidates (docs/FLAGS.md, Usage): what a super-admin may want to clean up.

Two reasons, both over the last N days: the flag was not evaluated (a flag never evaluated
counts from its creation), or its rollout stayed at 0 % or 100 % (`rollout_changed_at`,
kept by a trigger). Archived flags are already cleaned up and never listed. One answer for
the admin API and the admin's "Stale flags" form.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from piccolo.query.functions.aggregate import Max

from tables.flags import FeatureFlag, FeatureFlagUsage

NOT_EVALUATED = "not_evaluated"
ROLLOUT_SETTLED = "rollout_settled"


class StaleFlag(msgspec.Struct):
    key: str
    name: str
    reasons: list[str]
    """`not_evaluated` and/or `rollout_settled`."""
    last_evaluated_at: datetime | None
    rollout_percentage: Decimal
    rollout_changed_at: datetime
    created_at: datetime


async def stale_flags(days: int, now: datetime | None = None) -> list[StaleFlag]:
    """The non-archived flags that are stale candidates after `days` days, by key."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    latest = {
        row["flag_id"]: row["last"]
        for row in await FeatureFlagUsage.select(
            FeatureFlagUsage.flag_id, Max(FeatureFlagUsage.last_evaluated_at, alias="last")
        ).group_by(FeatureFlagUsage.flag_id)
    }
    flags = (
        await FeatureFlag.select(
            FeatureFlag.id,
            FeatureFlag.key,
            FeatureFlag.name,
            FeatureFlag.rollout_percentage,
            FeatureFlag.rollout_changed_at,
            FeatureFlag.created_at,
        )
        .where(FeatureFlag.archived == False)  # noqa: E712
        .order_by(FeatureFlag.key)
    )
    stale = []
    for flag in flags:
        last = latest.get(flag["id"])
        reasons = []
        if (last or flag["created_at"]) < cutoff:
            reasons.append(NOT_EVALUATED)
        settled = flag["rollout_percentage"] in (Decimal(0), Decimal(100))
        if settled and flag["rollout_changed_at"] < cutoff:
            reasons.append(ROLLOUT_SETTLED)
        if reasons:
            stale.append(
                StaleFlag(
                    key=flag["key"],
                    name=flag["name"],
                    reasons=reasons,
                    last_evaluated_at=last,
                    rollout_percentage=flag["rollout_percentage"],
                    rollout_changed_at=flag["rollout_changed_at"],
                    created_at=flag["created_at"],
                )
            )
    return stale
