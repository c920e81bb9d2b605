"""The shared validation of flags, rules and scheduled changes, called directly (the admin
API and Piccolo Admin call these same functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.flags.rules import (
    override_variant,
    validate_definition,
    validate_flag_changes,
    validate_flag_type,
    validate_rule,
    validate_schedule,
    validate_schedule_change,
)
from api.platform.http.errors import Conflict, InvalidInput

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SIZES = {"small": 1, "large": 3}


def test_float_values_become_floats_and_integral_floats_whole_numbers() -> None:
    floats = validate_definition(
        {"flag_type": "float", "variants": {"a": 1, "b": 2.5}, "default_variant": "a",
         "off_variant": "b"}
    )  # fmt: skip
    assert floats["variants"] == {"a": 1.0, "b": 2.5}
    assert isinstance(floats["variants"]["a"], float)
    integers = validate_definition(
        {"flag_type": "integer", "variants": {"a": 3.0}, "default_variant": "a",
         "off_variant": "a"}
    )  # fmt: skip
    assert integers["variants"] == {"a": 3}
    assert isinstance(integers["variants"]["a"], int)


@pytest.mark.parametrize("value", [True, 2.5, float("nan"), float("inf"), "3", 2**64])
def test_integer_variants_refuse_what_is_not_a_whole_number(value: Any) -> None:
    with pytest.raises(InvalidInput):
        validate_definition(
            {"flag_type": "integer", "variants": {"a": value}, "default_variant": "a",
             "off_variant": "a"}
        )  # fmt: skip


def test_a_boolean_flag_gets_on_and_off_and_a_change_is_checked_against_the_row() -> None:
    new = validate_flag_changes({"key": "k", "name": "K"})
    assert (new["variants"], new["default_variant"], new["off_variant"]) == (
        {"on": True, "off": False},
        "on",
        "off",
    )
    with pytest.raises(InvalidInput, match="off_variant must be one of"):
        validate_flag_changes({"variants": {"on": True}}, current=new)


@pytest.mark.parametrize(
    ("variant", "enabled", "flag_type", "expected"),
    [("a", None, "string", "a"), (None, True, "boolean", "on"), (None, False, "boolean", "off")],
)
def test_enabled_is_shorthand_for_boolean_flags(
    variant: Any, enabled: Any, flag_type: str, expected: str
) -> None:
    assert override_variant(flag_type, variant, enabled) == expected


def test_a_rule_switches_from_variant_to_split() -> None:
    rule = {"name": "r", "variant": "small", "split": None, "conditions": []}
    changes = {"variant": None, "split": {"small": 1, "large": 1.0}}
    cleaned = validate_rule(changes, {**rule, **changes}, SIZES)
    assert cleaned == {"variant": None, "split": {"small": 1, "large": 1}}


def test_a_schedule_takes_only_its_own_argument_and_a_future_time() -> None:
    base = {"run_at": NOW + timedelta(hours=1), "note": "", "variants": SIZES, "now": NOW}
    made = validate_schedule(action="set_rollout", rollout_percentage="12.5", variant=None, **base)
    assert str(made["rollout_percentage"]) == "12.50"
    with pytest.raises(InvalidInput, match="run_at must be in the future"):
        validate_schedule(
            action="enable", rollout_percentage=None, variant=None, **{**base, "run_at": NOW}
        )


@pytest.mark.parametrize("status", ["applied", "failed", "cancelled"])
def test_only_a_pending_change_is_cancelled(status: str) -> None:
    validate_schedule_change("pending", {"status": "cancelled"})
    with pytest.raises(Conflict, match=f"this one is {status}"):
        validate_schedule_change(status, {"status": "cancelled"})
    with pytest.raises(InvalidInput, match="run_at cannot be changed"):
        validate_schedule_change("pending", {"run_at": NOW})


@pytest.mark.parametrize("value", [[], {}, ["boolean"], {"type": "string"}, 1, None])
def test_an_unhashable_or_odd_type_or_action_is_a_422_not_a_crash(value: object) -> None:
    with pytest.raises(InvalidInput):
        validate_flag_type(value)
    with pytest.raises(InvalidInput):
        validate_schedule(action=value, rollout_percentage=None, variant=None,
                          run_at=None, note="", variants={"on": True})  # fmt: skip
