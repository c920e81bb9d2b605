"""Flag evaluation (PRODUCT §3.2, docs/FLAGS.md) as a pure engine, with OpenFeature reasons.

Precedence: missing → FLAG_NOT_FOUND; archived or switched off → the off variant, DISABLED
(the kill switch beats everything); the user's own override; the nearest node override from
the user's node up to the root; the first rule whose segment and conditions hold; the
percentage rollout (with its optional weighted split). Expired overrides, and overrides or
rules naming a variant the flag no longer has, are ignored: evaluation falls through them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from api.flags.conditions import MISSING, Condition, MatchBudget, dotted

BUCKETS = 10_000  # 0.01 % resolution
BOOLEAN_VARIANTS: Mapping[str, Any] = {"on": True, "off": False}


class Reason(StrEnum):
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DEFAULT = "DEFAULT"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


Split = tuple[tuple[str, int], ...]
"""Variant weights in variant-name order."""


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...] = ()
    segment: Segment | None = None
    variant: str | None = None
    split: Split | None = None


@dataclass(frozen=True, slots=True)
class FlagDefinition:
    id: int
    key: str
    name: str
    enabled: bool
    rollout_percentage: Decimal
    archived: bool
    version: int
    flag_type: str = "boolean"
    variants: Mapping[str, Any] = field(default_factory=lambda: dict(BOOLEAN_VARIANTS))
    default_variant: str = "on"
    off_variant: str = "off"
    rollout_split: Split | None = None
    rules: tuple[Rule, ...] = ()
    encoded: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """The flag's answers as encoded once and shared by every user's cached result
    (api/flags/store.py); lives and dies with this definition."""


@dataclass(frozen=True, slots=True)
class FlagOverride:
    flag_id: int
    user_id: int | None
    node_id: int | None
    variant: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Organization:
    id: int
    slug: str
    settings: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    """Who a flag is evaluated for: what conditions read, and where node overrides apply."""

    user_id: int | str
    node_path: Sequence[int] = ()
    email: str | None = None
    organization: Organization | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """The OFREP evaluation context's own attributes (targetingKey left out)."""
    budget: MatchBudget = field(default_factory=MatchBudget, compare=False)
    """What pattern matching may still cost in this evaluation (shared by every flag)."""

    def lookup(self, attribute: str) -> Any:
        if attribute.startswith("context."):
            return dotted(self.attributes, attribute.removeprefix("context."))
        if attribute == "user.id":
            return str(self.user_id)
        if attribute in ("user.email", "user.email_domain"):
            if not self.email:
                return MISSING
            email = self.email.lower()
            return email if attribute == "user.email" else email.rpartition("@")[2]
        organization = self.organization
        if organization is None:
            return MISSING
        if attribute == "organization.id":
            return str(organization.id)
        if attribute == "organization.slug":
            return organization.slug
        return dotted(organization.settings, attribute.removeprefix("organization.settings."))


@dataclass(frozen=True, slots=True)
class Evaluation:
    key: str
    value: Any
    reason: Reason
    variant: str | None = None
    error_code: str | None = None
    metadata: Mapping[str, str | int] = field(default_factory=dict, compare=False)
    """What decided a TARGETING_MATCH (override, rule, segment); explanatory only."""
    flag_id: int | None = field(default=None, compare=False)
    flag: FlagDefinition | None = field(default=None, compare=False, repr=False)
    """The definition served, whose encoded answers a cached result shares."""

    @property
    def override_node_id(self) -> int | None:
        node = self.metadata.get("nodeId")
        return node if isinstance(node, int) else None


def bucket(flag_key: str, user_id: int | str) -> int:
    """A stable bucket in [0, 10000) for (flag, user): SHA-256, never Python's hash()."""
    digest = hashlib.sha256(f"{flag_key}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(flag_key: str, user_id: int | str, percentage: Decimal) -> bool:
    """True iff the user's bucket is below the percentage; raising it only adds users."""
    return bucket(flag_key, user_id) < int(percentage * 100)


def pick_variant(flag_key: str, user_id: int | str, split: Split) -> str:
    """The variant a weighted split gives the user: its own bucket, so that changing the
    rollout percentage never moves a user between variants."""
    total = sum(weight for _, weight in split)
    point = bucket(flag_key + "/variant", user_id) * total // BUCKETS
    for name, weight in split:
        if point < weight:
            return name
        point -= weight
    return split[-1][0]


def flag_not_found(key: str) -> Evaluation:
    return Evaluation(key, False, Reason.ERROR, error_code="FLAG_NOT_FOUND")


def _serve(
    flag: FlagDefinition, variant: str, reason: Reason, metadata: Mapping[str, str | int]
) -> Evaluation:
    return Evaluation(
        flag.key,
        flag.variants[variant],
        reason,
        variant,
        metadata=metadata,
        flag_id=flag.id,
        flag=flag,
    )


def _rule_matches(rule: Rule, context: EvaluationContext) -> bool:
    lookup, budget = context.lookup, context.budget
    segment = rule.segment
    if segment is not None and not all(c.holds(lookup, budget) for c in segment.conditions):
        return False
    return all(c.holds(lookup, budget) for c in rule.conditions)


def evaluate_flag(
    flag: FlagDefinition | None,
    context: EvaluationContext,
    overrides: Iterable[FlagOverride],
    now: datetime,
    *,
    key: str = "",
) -> Evaluation:
    """Evaluate one flag for the context, given the overrides that may apply to its user."""
    if flag is None:
        return flag_not_found(key)
    variants = flag.variants
    if flag.archived or not flag.enabled:
        return _serve(flag, flag.off_variant, Reason.DISABLED, {})
    live = [
        o
        for o in overrides
        if o.flag_id == flag.id
        and (o.expires_at is None or o.expires_at > now)
        and o.variant in variants
    ]
    user = str(context.user_id)
    for override in live:
        if override.user_id is not None and str(override.user_id) == user:
            return _serve(flag, override.variant, Reason.TARGETING_MATCH, {"override": "user"})
    by_node = {o.node_id: o for o in live if o.node_id is not None}
    for node_id in reversed(context.node_path):
        if node_id in by_node:
            found: dict[str, str | int] = {"override": "node", "nodeId": node_id}
            return _serve(flag, by_node[node_id].variant, Reason.TARGETING_MATCH, found)
    for rule in flag.rules:
        if not _rule_matches(rule, context):
            continue
        if rule.split is not None:
            variant = pick_variant(flag.key, context.user_id, rule.split)
        else:
            variant = rule.variant or ""
        if variant not in variants:
            continue
        metadata: dict[str, str | int] = {"rule": rule.name}
        if rule.segment is not None:
            metadata["segment"] = rule.segment.key
        return _serve(flag, variant, Reason.TARGETING_MATCH, metadata)
    return _rollout(flag, context.user_id)


def _rollout(flag: FlagDefinition, user_id: int | str) -> Evaluation:
    if flag.rollout_percentage <= 0:
        return _serve(flag, flag.off_variant, Reason.DEFAULT, {})
    split = flag.rollout_split
    if flag.rollout_percentage >= 100 and split is None:
        return _serve(flag, flag.default_variant, Reason.DEFAULT, {})
    if not in_rollout(flag.key, user_id, flag.rollout_percentage):
        return _serve(flag, flag.off_variant, Reason.SPLIT, {})
    variant = flag.default_variant if split is None else pick_variant(flag.key, user_id, split)
    return _serve(flag, variant, Reason.SPLIT, {})
