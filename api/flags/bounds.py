"""The documented bounds of flag data (docs/FLAGS.md, "Limits"): numbers, patterns, sizes.

Everything here is checked once, when a value is written or a definition compiled, so that
evaluation never meets a value it cannot afford; the per-request checks are O(1).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

INTEGER_LIMIT = 2**63 - 1
"""The largest magnitude an integer from outside may have to count as a number: integer
variants are served as 64-bit integers, and beyond it int → float may overflow."""
USER_ID_LIMIT = 2**31 - 1
"""User ids are 32-bit serials: a larger targetingKey names nobody."""

MAX_PATTERN_PROGRAM = 1_000
"""RE2 program size of one `matches` pattern. Typical patterns are 10-100; at ~1,400 RE2's
DFA stops fitting its memory and search falls back to the slow NFA (docs/FLAGS.md)."""
MAX_CONDITIONS_PROGRAM = 2_000
"""Total RE2 program size of one rule's (or one segment's) conditions."""
MAX_FLAG_PROGRAM = 4_000
"""Total RE2 program size of all the rules of one flag (their segments not counted)."""
EVALUATION_PROGRAM_BUDGET = 10_000
"""RE2 program size one evaluation (one request, every flag) may spend on matching; once
spent, further `matches` conditions of that evaluation do not hold."""

MAX_OBJECT_VARIANT_BYTES = 16 * 1024
"""An object variant, JSON-encoded (like node settings)."""
MAX_DEFINITION_BYTES = 64 * 1024
"""A flag's variants and rollout split together, JSON-encoded."""
MAX_RULE_BYTES = 64 * 1024
"""A rule's conditions and split, JSON-encoded."""
MAX_SEGMENT_BYTES = 64 * 1024
"""A segment's conditions, JSON-encoded."""


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a number in range (bools, huge integers, NaN and
    infinities are not), else None; never raises."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value) if -INTEGER_LIMIT <= value <= INTEGER_LIMIT else None
    return None


def whole_number(value: Any, low: int, high: int) -> int | None:
    """`value` as an int when it is a whole number (int, or integral float) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    if not low <= value <= high:
        return None
    return int(value)


def ascii_digits(text: str) -> bool:
    """0-9 only: `str.isdigit()` also accepts "²" and other digits `int()` refuses."""
    return text.isascii() and text.isdigit()


UNENCODABLE = 1 << 62
"""The size of a value JSON cannot hold (an integer past 64 bits): over every bound."""


def encoded_size(value: Any) -> int:
    """Bytes of `value` as JSON: what a stored value costs in a response and in memory."""
    try:
        return len(msgspec.json.encode(value))
    except (TypeError, OverflowError, msgspec.EncodeError):
        return UNENCODABLE
