"""A reload keeps the definition of every flag a change did not touch (api/flags/store.py):
its encoded answers stay warm and an event stream's fan-out, which goes by identity,
re-evaluates only the flags that were replaced."""

from __future__ import annotations

from decimal import Decimal

from api.flags.conditions import compile_conditions
from api.flags.evaluate import FlagDefinition, Rule, Segment
from api.flags.store import kept_where_equal, plan_for

STAFF = [{"attribute": "user.email", "operator": "matches", "values": [r"@acme\.example$"]}]


def definition(key: str, *, version: int = 1, pattern: str = r"@acme\.example$") -> FlagDefinition:
    conditions = compile_conditions(
        [{"attribute": "user.email", "operator": "matches", "values": [pattern]}]
    )
    segment = Segment("staff", compile_conditions(STAFF))
    rules = (Rule("staff", conditions, segment, "on"),)
    return FlagDefinition(
        key.__hash__() % 1000, key, key, True, Decimal(0), False, version, rules=rules
    )


def test_unchanged_flags_keep_their_definition_and_changed_ones_are_replaced() -> None:
    held = {key: definition(key) for key in ("a", "b", "c")}
    loaded = {
        "a": definition("a"),  # the same rows, compiled again (a new regular expression)
        "b": definition("b", version=2),
        "c": definition("c", pattern=r"@globex\.example$"),
        "d": definition("d"),
    }
    kept = kept_where_equal(held, dict(loaded))
    assert kept["a"] is held["a"]
    assert kept["b"] is loaded["b"]
    assert kept["c"] is loaded["c"]
    assert kept["d"] is loaded["d"]
    before, after = tuple(held.values()), tuple(kept.values())
    assert plan_for(before, after) == (0, -1, -1, -1)
