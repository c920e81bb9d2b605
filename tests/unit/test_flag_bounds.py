"""The bounds of flag data as pure rules (docs/FLAGS.md, Limits): numbers out of range never
match and are refused on write; costly patterns are refused; matching spends a budget."""

from __future__ import annotations

from typing import Any

import pytest

from api.flags.bounds import EVALUATION_PROGRAM_BUDGET, ascii_digits, finite_number
from api.flags.conditions import ConditionError, MatchBudget, compile_conditions
from api.flags.rules import validate_definition, validate_split
from api.platform.http.errors import InvalidInput

HUGE = 10**400


def cond(operator: str, *values: Any) -> dict[str, Any]:
    return {"attribute": "context.x", "operator": operator, "values": list(values)}


@pytest.mark.parametrize(
    ("value", "number"),
    [(1, 1.0), (2.5, 2.5), (2**63 - 1, float(2**63 - 1)), (2**63, None), (-HUGE, None),
     (HUGE, None), (float("inf"), None), (float("nan"), None), (True, None), ("1", None)],
)  # fmt: skip
def test_a_number_from_outside_is_in_range_or_none(value: Any, number: float | None) -> None:
    assert finite_number(value) == number


@pytest.mark.parametrize("text", ["²", "١٢", "12 ", "", "-1", "1.0"])
def test_digits_are_ascii_digits(text: str) -> None:
    assert not ascii_digits(text)


@pytest.mark.parametrize(
    ("operator", "value"),
    [("in", HUGE), ("gt", HUGE), ("lt", -HUGE), ("after", HUGE), ("matches", HUGE),
     ("gt", "1e400"), ("gt", "١٢"), ("gt", "9" * 5000), ("equals", 2**63)],
)  # fmt: skip
def test_a_huge_number_compares_as_no_match(operator: str, value: Any) -> None:
    wanted = {"in": "1", "gt": 0, "lt": 0, "after": "2020-01-01", "matches": ".", "equals": "1"}
    (condition,) = compile_conditions([cond(operator, wanted[operator])])
    assert condition.holds(lambda name: value) is False


@pytest.mark.parametrize("operator", ["in", "equals", "gt", "lte"])
def test_a_huge_number_in_a_condition_is_refused(operator: str) -> None:
    with pytest.raises(ConditionError, match="9223372036854775807"):
        compile_conditions([cond(operator, HUGE)])


def test_a_costly_pattern_is_refused_naming_the_limit() -> None:
    with pytest.raises(ConditionError, match="RE2 program size 8165; the limit is 1000"):
        compile_conditions([cond("matches", "(.{1,30}){1,30}x0")])


def test_typical_patterns_cost_little() -> None:
    (condition,) = compile_conditions([cond("matches", r"^[a-z.]+@(acme|globex)\.example$")])
    assert 0 < condition.cost < 100


def test_matching_stops_when_the_evaluations_budget_is_spent() -> None:
    (condition,) = compile_conditions([cond("matches", "(.{1,10}){1,10}x0", "x")])
    budget = MatchBudget()
    lookup = lambda name: "x"  # noqa: E731
    held = sum(condition.holds(lookup, budget) for _ in range(100))
    assert held == EVALUATION_PROGRAM_BUDGET // condition.cost
    assert condition.holds(lookup) is True  # no budget: a caller that counts nothing


@pytest.mark.parametrize(
    ("flag_type", "value"),
    [("float", HUGE), ("float", float("inf")), ("integer", 2**63), ("integer", HUGE),
     ("integer", 1e300), ("object", {"x": "y" * 16384})],
)  # fmt: skip
def test_variants_out_of_range_are_refused(flag_type: str, value: Any) -> None:
    row = {"flag_type": flag_type, "variants": {"a": value, "b": value},
           "default_variant": "a", "off_variant": "b"}  # fmt: skip
    with pytest.raises(InvalidInput, match="the value of 'a'"):
        validate_definition(row)


def test_a_flag_definition_is_bounded_as_a_whole() -> None:
    value = {"x": "y" * 16000}
    row = {"flag_type": "object", "variants": {n: value for n in "abcde"},
           "default_variant": "a", "off_variant": "b"}  # fmt: skip
    with pytest.raises(InvalidInput, match="64 KiB per flag"):
        validate_definition(row)


@pytest.mark.parametrize("weight", [HUGE, 10_001, -1, 1.5, float("nan"), True])
def test_split_weights_are_whole_numbers_in_range(weight: Any) -> None:
    with pytest.raises(InvalidInput, match="whole number from 0 to 10000"):
        validate_split({"a": weight, "b": 1}, {"a": 1, "b": 2}, "split")
