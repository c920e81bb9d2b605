"""Targeting conditions (docs/FLAGS.md): compiled once per flag load, matched per evaluation.

Compiling checks everything that can be checked without a user (operator, value shapes,
regular expressions, versions, dates), so validation and evaluation read one definition and
a stored rule cannot fail at evaluation time. Matching is pure: it reads attributes through
a lookup that answers MISSING for an absent one, and an absent attribute never matches.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import re2
import semver

from api.flags.bounds import (
    EVALUATION_PROGRAM_BUDGET,
    INTEGER_LIMIT,
    MAX_CONDITIONS_PROGRAM,
    MAX_PATTERN_PROGRAM,
    finite_number,
)

MAX_VALUES = 1000
MAX_PATTERN = 500
MAX_MATCH_TEXT = 4096
ATTRIBUTE_PREFIXES = ("context.", "organization.settings.")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the editor's 422, not a log line
_RE2_OPTIONS.max_mem = 1 << 20  # per pattern: bounds the automaton a pattern may build
ATTRIBUTES = ("user.id", "user.email", "user.email_domain", "organization.id", "organization.slug")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
Lookup = Callable[[str], Any]


class ConditionError(ValueError):
    """A condition that cannot be compiled; str() is the sentence shown to the editor."""


class MatchBudget:
    """The RE2 program size one evaluation may still spend on `matches` conditions
    (docs/FLAGS.md, Limits): what bounds the time a request holds the event loop."""

    __slots__ = ("left",)

    def __init__(self, left: int = EVALUATION_PROGRAM_BUDGET) -> None:
        self.left = left


def _text(value: Any) -> str | None:
    """The value as text; numbers out of range (a 400-digit integer) have none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if finite_number(value) is None:
        return None
    return str(value)


NUMBER_TEXT = 40
"""Longer text is not read as a number (no float() on a 4,000-digit string)."""


def _number(value: Any) -> float | None:
    """The value as a number in range: ints within ±(2**63 - 1), finite floats, or short
    ASCII text of one (`float()` alone would also read "١٢" or "1e400")."""
    if isinstance(value, str):
        if len(value) > NUMBER_TEXT or not value.isascii():
            return None
        try:
            number = float(value)
        except ValueError:
            return None
        return finite_number(number)
    return finite_number(value)


def _version(value: Any) -> semver.Version | None:
    if not isinstance(value, str):
        return None
    try:
        return semver.Version.parse(value.removeprefix("v"))
    except (ValueError, TypeError):
        return None


def _instant(value: Any) -> float | None:
    """Epoch seconds from an ISO 8601 date/time (UTC without offset) or a number."""
    if not isinstance(value, str):
        return finite_number(value)
    if not value.isascii():
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "eq": operator.eq,
    "before": operator.lt,
    "after": operator.gt,
}
TEXT_OPERATORS = ("in", "not_in", "equals", "not_equals", "starts_with", "ends_with", "contains")
NUMBER_OPERATORS = ("lt", "lte", "gt", "gte")
SEMVER_OPERATORS = ("semver_eq", "semver_lt", "semver_lte", "semver_gt", "semver_gte")
DATE_OPERATORS = ("before", "after")
OPERATORS = (*TEXT_OPERATORS, *NUMBER_OPERATORS, *SEMVER_OPERATORS, *DATE_OPERATORS, "matches")
SINGLE_VALUE = ("equals", "not_equals", *NUMBER_OPERATORS, *SEMVER_OPERATORS, *DATE_OPERATORS)


@dataclass(frozen=True, slots=True)
class Condition:
    attribute: str
    operator: str
    test: Callable[[Any], bool] = field(compare=False)
    """Applied to the attribute's value (never MISSING)."""
    cost: int = 0
    """RE2 program size of a `matches` condition's patterns; 0 for the others."""
    values: str = ""
    """The values as written (canonical JSON): two conditions compiled from the same source
    compare equal, so a reload keeps a flag nobody changed (api/flags/store.py)."""

    def holds(self, lookup: Lookup, budget: MatchBudget | None = None) -> bool:
        """Whether the condition holds; a `matches` condition the evaluation's budget
        cannot pay for does not."""
        value = lookup(self.attribute)
        if value is MISSING or value is None:
            return False
        if self.cost and budget is not None:
            if budget.left < self.cost:
                return False
            budget.left -= self.cost
        return self.test(value)


def _text_test(op: str, values: tuple[str, ...]) -> Callable[[Any], bool]:
    wanted = frozenset(values)
    tests: dict[str, Callable[[str], bool]] = {
        "in": lambda text: text in wanted,
        "not_in": lambda text: text not in wanted,
        "equals": lambda text: text == values[0],
        "not_equals": lambda text: text != values[0],
        "starts_with": lambda text: text.startswith(values),
        "ends_with": lambda text: text.endswith(values),
        "contains": lambda text: any(v in text for v in values),
    }
    compare = tests[op]

    def test(value: Any) -> bool:
        text = _text(value)
        return text is not None and compare(text)

    return test


def _compile_one(position: int, raw: Any) -> Condition:
    where = f"condition {position}"
    if not isinstance(raw, dict):
        raise ConditionError(f"{where}: must be an object with attribute, operator and values")
    unknown = sorted(set(raw) - {"attribute", "operator", "values"})
    if unknown:
        raise ConditionError(f"{where}: unknown field {unknown[0]!r}")
    attribute, op, values = raw.get("attribute"), raw.get("operator"), raw.get("values")
    if not isinstance(attribute, str) or not (
        attribute in ATTRIBUTES
        or any(attribute.startswith(p) and len(attribute) > len(p) for p in ATTRIBUTE_PREFIXES)
    ):
        raise ConditionError(
            f"{where}: attribute must be one of {', '.join(ATTRIBUTES)}, "
            "organization.settings.<name> or context.<name>"
        )
    if len(attribute) > 200:
        raise ConditionError(f"{where}: attribute is longer than 200 characters")
    if op not in OPERATORS:
        raise ConditionError(f"{where}: operator {op!r} is not one of {', '.join(OPERATORS)}")
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_VALUES:
        raise ConditionError(f"{where}: values must be a list of 1 to {MAX_VALUES} entries")
    if op in SINGLE_VALUE and len(values) != 1:
        raise ConditionError(f"{where}: {op} takes exactly one value")
    source = json.dumps(values, sort_keys=True, separators=(",", ":"))
    if op == "matches":
        test, cost = _matches_test(where, values)
        return Condition(attribute, op, test, cost, source)
    return Condition(attribute, op, _test(where, op, values), 0, source)


def _test(where: str, op: str, values: list[Any]) -> Callable[[Any], bool]:
    if op in TEXT_OPERATORS:
        texts = tuple(_text(v) for v in values)
        if any(t is None or isinstance(v, bool) for t, v in zip(texts, values, strict=True)):
            raise ConditionError(
                f"{where}: {op} compares text; give strings or numbers (within ±{INTEGER_LIMIT})"
            )
        return _text_test(op, tuple(t for t in texts if t is not None))
    if op in NUMBER_OPERATORS:
        bound = _number(values[0]) if not isinstance(values[0], str) else None
        if bound is None:
            raise ConditionError(
                f"{where}: {op} needs a number (finite, integers within ±{INTEGER_LIMIT})"
            )
        compare = _ORDER[op]
        return lambda value: (n := _number(value)) is not None and compare(n, bound)
    if op in SEMVER_OPERATORS:
        version = _version(values[0])
        if version is None:
            raise ConditionError(f"{where}: {values[0]!r} is not a semantic version like 1.4.0")
        compare = _ORDER[op.removeprefix("semver_")]
        return lambda value: (v := _version(value)) is not None and compare(v.compare(version), 0)
    if op in DATE_OPERATORS:
        if not isinstance(values[0], str) or (instant := _instant(values[0])) is None:
            raise ConditionError(f"{where}: {values[0]!r} is not an ISO 8601 date or time")
        compare = _ORDER[op]
        return lambda value: (t := _instant(value)) is not None and compare(t, instant)
    raise ConditionError(f"{where}: operator {op!r} is not one of {', '.join(OPERATORS)}")


def _matches_test(where: str, values: list[Any]) -> tuple[Callable[[Any], bool], int]:
    """The test of a `matches` condition and its cost (the patterns' RE2 program size),
    each pattern within MAX_PATTERN_PROGRAM."""
    patterns = []
    for value in values:
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_PATTERN:
            raise ConditionError(f"{where}: a pattern is text of 1 to {MAX_PATTERN} characters")
        try:
            pattern = re2.compile(value, _RE2_OPTIONS)
        except re2.error as error:
            detail = error.args[0] if error.args else b""
            reason = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
            raise ConditionError(f"{where}: {value!r} is not a valid pattern ({reason})") from None
        size = max(pattern.programsize, pattern.reverseprogramsize)
        if size > MAX_PATTERN_PROGRAM:
            raise ConditionError(
                f"{where}: {value!r} is too costly to match (RE2 program size {size}; the"
                f" limit is {MAX_PATTERN_PROGRAM} per pattern)"
            )
        patterns.append((pattern, size))

    def matches(value: Any) -> bool:
        text = _text(value)
        if text is None or len(text) > MAX_MATCH_TEXT:
            return False
        return any(p.search(text) is not None for p, _ in patterns)

    return matches, sum(size for _, size in patterns)


def compile_conditions(raw: Any) -> tuple[Condition, ...]:
    """The conditions of a rule or segment, checked; ConditionError names the first fault."""
    if not isinstance(raw, list):
        raise ConditionError("conditions must be a list")
    if len(raw) > 50:
        raise ConditionError("a rule or segment has at most 50 conditions")
    conditions = tuple(_compile_one(i, item) for i, item in enumerate(raw, start=1))
    if (total := pattern_cost(conditions)) > MAX_CONDITIONS_PROGRAM:
        raise ConditionError(
            f"the patterns are too costly to match together (RE2 program size {total}; the"
            f" limit is {MAX_CONDITIONS_PROGRAM} per rule or segment)"
        )
    return conditions


def pattern_cost(conditions: tuple[Condition, ...]) -> int:
    """The RE2 program size of the `matches` conditions among `conditions`."""
    return sum(c.cost for c in conditions)


def dotted(source: Mapping[str, Any] | None, path: str) -> Any:
    """The value at a dotted path in nested objects, or MISSING."""
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value
