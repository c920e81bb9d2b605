"""Flag evaluation (PRODUCT §3.2) as a pure engine, with OpenFeature reasons.

Precedence: missing → FLAG_NOT_FOUND; archived or switched off → DISABLED (the kill switch
beats every override); the user's own override; the nearest node override from the user's
node up to the root; the percentage rollout. Expired overrides are ignored: evaluation falls
through them, it never reads them as "off".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

BUCKETS = 10_000  # 0.01 % resolution


class Reason(StrEnum):
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DEFAULT = "DEFAULT"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class FlagDefinition:
    id: int
    key: str
    name: str
    enabled: bool
    rollout_percentage: Decimal
    archived: bool
    version: int


@dataclass(frozen=True, slots=True)
class FlagOverride:
    flag_id: int
    user_id: int | None
    node_id: int | None
    enabled: bool
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Evaluation:
    key: str
    value: bool
    reason: Reason
    error_code: str | None = None
    # Which node's override decided a TARGETING_MATCH (None: the user's own override).
    # Explanatory only: left out of equality so results compare by value and reason.
    override_node_id: int | None = field(default=None, compare=False)

    @property
    def variant(self) -> str:
        return "on" if self.value else "off"


def bucket(flag_key: str, user_id: int | str) -> int:
    """A stable bucket in [0, 10000) for (flag, user): SHA-256, never Python's hash()."""
    digest = hashlib.sha256(f"{flag_key}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(flag_key: str, user_id: int | str, percentage: Decimal) -> bool:
    """True iff the user's bucket is below the percentage; raising it only adds users."""
    return bucket(flag_key, user_id) < int(percentage * 100)


def flag_not_found(key: str) -> Evaluation:
    return Evaluation(key, False, Reason.ERROR, "FLAG_NOT_FOUND")


def _live(override: FlagOverride, now: datetime) -> bool:
    return override.expires_at is None or override.expires_at > now


def evaluate_flag(
    flag: FlagDefinition | None,
    user_id: int | str,
    node_path: Sequence[int],
    overrides: Iterable[FlagOverride],
    now: datetime,
    *,
    key: str = "",
) -> Evaluation:
    """Evaluate one flag for a user whose node has ancestors `node_path` (root first)."""
    if flag is None:
        return flag_not_found(key)
    if flag.archived or not flag.enabled:
        return Evaluation(flag.key, False, Reason.DISABLED)
    live = [o for o in overrides if o.flag_id == flag.id and _live(o, now)]
    for override in live:
        if override.user_id is not None and str(override.user_id) == str(user_id):
            return Evaluation(flag.key, override.enabled, Reason.TARGETING_MATCH)
    by_node = {o.node_id: o for o in live if o.node_id is not None}
    for node_id in reversed(node_path):
        if node_id in by_node:
            return Evaluation(
                flag.key,
                by_node[node_id].enabled,
                Reason.TARGETING_MATCH,
                override_node_id=node_id,
            )
    if flag.rollout_percentage <= 0:
        return Evaluation(flag.key, False, Reason.DEFAULT)
    if flag.rollout_percentage >= 100:
        return Evaluation(flag.key, True, Reason.DEFAULT)
    return Evaluation(
        flag.key, in_rollout(flag.key, user_id, flag.rollout_percentage), Reason.SPLIT
    )
