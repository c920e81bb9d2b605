"""Flag evaluation semantics (PRODUCT §3.2), table-driven on the pure engine."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from api.flags.evaluate import (
    EvaluationContext,
    FlagDefinition,
    FlagOverride,
    Reason,
    bucket,
    evaluate_flag,
    in_rollout,
)
from tests.support.env import ROOT

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PAST = NOW - timedelta(minutes=1)
FUTURE = NOW + timedelta(days=1)
USER = 42
PATH = (1, 10, 100)  # organization 1 > location 10 > department 100 (the user's node)


def flag(enabled: bool = True, rollout: str = "0", archived: bool = False) -> FlagDefinition:
    return FlagDefinition(7, "new-dashboard", "New", enabled, Decimal(rollout), archived, 1)


def user_override(enabled: bool, expires: datetime | None = None, user: int = USER) -> FlagOverride:
    return FlagOverride(7, user, None, "on" if enabled else "off", expires)


def node_override(node: int, enabled: bool, expires: datetime | None = None) -> FlagOverride:
    return FlagOverride(7, None, node, "on" if enabled else "off", expires)


def ctx(user: int = USER) -> EvaluationContext:
    return EvaluationContext(user, PATH)


CASES = [
    (
        "kill_switch_beats_user_override",
        flag(enabled=False),
        [user_override(True)],
        False,
        Reason.DISABLED,
    ),
    (
        "kill_switch_beats_node_override",
        flag(enabled=False),
        [node_override(100, True)],
        False,
        Reason.DISABLED,
    ),
    (
        "archived_flag_is_off",
        flag(archived=True, rollout="100"),
        [user_override(True)],
        False,
        Reason.DISABLED,
    ),
    (
        "user_override_beats_node_overrides",
        flag(),
        [node_override(100, True), user_override(False)],
        False,
        Reason.TARGETING_MATCH,
    ),
    (
        "nearest_node_wins",
        flag(),
        [node_override(1, False), node_override(10, True)],
        True,
        Reason.TARGETING_MATCH,
    ),
    (
        "nearest_node_wins_at_the_users_own_node",
        flag(rollout="100"),
        [node_override(10, True), node_override(100, False)],
        False,
        Reason.TARGETING_MATCH,
    ),
    ("root_override_applies_below", flag(), [node_override(1, True)], True, Reason.TARGETING_MATCH),
    (
        "expired_user_override_falls_through_to_node",
        flag(),
        [user_override(False, PAST), node_override(10, True)],
        True,
        Reason.TARGETING_MATCH,
    ),
    (
        "expired_override_is_not_false",
        flag(rollout="100"),
        [user_override(False, PAST)],
        True,
        Reason.DEFAULT,
    ),
    (
        "unexpired_override_applies",
        flag(),
        [user_override(True, FUTURE)],
        True,
        Reason.TARGETING_MATCH,
    ),
    (
        "override_for_another_user_is_ignored",
        flag(),
        [user_override(True, user=43)],
        False,
        Reason.DEFAULT,
    ),
    (
        "override_outside_the_path_is_ignored",
        flag(),
        [node_override(999, True)],
        False,
        Reason.DEFAULT,
    ),
    ("zero_percent_is_default_off", flag(rollout="0"), [], False, Reason.DEFAULT),
    ("hundred_percent_is_on", flag(rollout="100"), [], True, Reason.DEFAULT),
]


@pytest.mark.parametrize(
    ("definition", "overrides", "value", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_evaluation_precedence(
    definition: FlagDefinition, overrides: list[FlagOverride], value: bool, reason: Reason
) -> None:
    result = evaluate_flag(definition, ctx(), overrides, NOW)
    assert (result.value, result.reason) == (value, reason)


def test_unknown_key_is_flag_not_found() -> None:
    result = evaluate_flag(None, ctx(), [], NOW, key="nope")
    assert (result.key, result.value, result.reason, result.error_code) == (
        "nope",
        False,
        Reason.ERROR,
        "FLAG_NOT_FOUND",
    )


def test_a_partial_rollout_is_a_split() -> None:
    results = {evaluate_flag(flag(rollout="50"), ctx(uid), [], NOW).reason for uid in range(50)}
    assert results == {Reason.SPLIT}


@pytest.mark.parametrize("percentage", ["10", "50", "90"])
def test_rollout_share_is_within_one_point_over_100k_users(percentage: str) -> None:
    on = sum(in_rollout("new-dashboard", uid, Decimal(percentage)) for uid in range(100_000))
    assert abs(on / 1000 - float(percentage)) <= 1.0


def test_raising_the_percentage_never_turns_anyone_off() -> None:
    previous: set[int] = set()
    for percentage in ("0.5", "5", "12.25", "40", "77.77", "99.99", "100"):
        now_on = {uid for uid in range(20_000) if in_rollout("dark-mode", uid, Decimal(percentage))}
        assert previous <= now_on
        previous = now_on


def test_buckets_have_hundredth_of_a_percent_resolution() -> None:
    assert {bucket("k", uid) for uid in range(200_000)} == set(range(10_000))


def test_the_bucket_is_stable_across_processes() -> None:
    here = [bucket("stable-flag", uid) for uid in (1, 2, 3, 12345)]
    script = "from api.flags.evaluate import bucket; print([bucket('stable-flag', u) for u in (1, 2, 3, 12345)])"
    there = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""})  # fmt: skip
    assert there.stdout.strip() == str(here)


@pytest.mark.parametrize(
    ("overrides", "deciding_node"),
    [
        ([user_override(True), node_override(10, False)], None),
        ([node_override(1, False), node_override(10, True)], 10),
        ([node_override(1, True)], 1),
    ],
    ids=["user_override_names_no_node", "nearest_node_is_named", "root_is_named"],
)
def test_a_targeting_match_tells_which_node_decided(
    overrides: list[FlagOverride], deciding_node: int | None
) -> None:
    result = evaluate_flag(flag(), ctx(), overrides, NOW)
    assert result.reason is Reason.TARGETING_MATCH
    assert result.override_node_id == deciding_node
