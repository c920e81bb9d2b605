"""Variants, rules, segments and conditions (docs/FLAGS.md), table-driven on the pure engine.

The precedence table: kill switch > user override > nearest node override > rules in order
> rollout/default; each row names what decided and the reason OpenFeature is told.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from api.flags.conditions import MISSING, ConditionError, compile_conditions
from api.flags.evaluate import (
    EvaluationContext,
    FlagDefinition,
    FlagOverride,
    Organization,
    Reason,
    Rule,
    Segment,
    evaluate_flag,
    in_rollout,
    pick_variant,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PAST = NOW - timedelta(minutes=1)
USER = 42
PATH = (1, 10, 100)
COLOURS = {"blue": "#1f6feb", "green": "#2da44e", "orange": "#fb8500"}
ACME = Organization(1, "acme", {"plan": "enterprise", "limits": {"seats": 50}})


def cond(attribute: str, operator: str, *values: Any) -> dict[str, Any]:
    return {"attribute": attribute, "operator": operator, "values": list(values)}


def rule(name: str, *conditions: dict[str, Any], variant: str | None = None,
         split: tuple[tuple[str, int], ...] | None = None, segment: Segment | None = None) -> Rule:  # fmt: skip
    return Rule(name, compile_conditions(list(conditions)), segment, variant, split)


ENTERPRISE = rule("enterprise", cond("organization.settings.plan", "in", "enterprise"),
                  variant="green")  # fmt: skip
EVERYONE = rule("everyone", variant="orange")
NOBODY = rule("nobody", cond("user.email_domain", "in", "nowhere.example"), variant="orange")
STAFF = Segment("acme-staff", compile_conditions([cond("user.email_domain", "in", "acme.example")]))


def colour_flag(*rules: Rule, enabled: bool = True, rollout: str = "100",
                split: tuple[tuple[str, int], ...] | None = None) -> FlagDefinition:  # fmt: skip
    return FlagDefinition(
        7, "button-colour", "Button colour", enabled, Decimal(rollout), False, 1,
        flag_type="string", variants=COLOURS, default_variant="blue", off_variant="blue",
        rollout_split=split, rules=rules,
    )  # fmt: skip


def user_override(variant: str, expires: datetime | None = None) -> FlagOverride:
    return FlagOverride(7, USER, None, variant, expires)


def node_override(node: int, variant: str) -> FlagOverride:
    return FlagOverride(7, None, node, variant, None)


def context(email: str = "uma@acme.example", **attributes: Any) -> EvaluationContext:
    return EvaluationContext(USER, PATH, email, ACME, attributes)


PRECEDENCE = [
    # id, flag, overrides, variant, reason, metadata
    ("kill_switch_beats_everything", colour_flag(EVERYONE, enabled=False),
     [user_override("green"), node_override(10, "green")], "blue", Reason.DISABLED, {}),
    ("user_override_beats_node_override_and_rules", colour_flag(EVERYONE),
     [user_override("green"), node_override(100, "orange")], "green", Reason.TARGETING_MATCH,
     {"override": "user"}),
    ("nearest_node_override_beats_rules", colour_flag(EVERYONE),
     [node_override(1, "orange"), node_override(10, "green")], "green", Reason.TARGETING_MATCH,
     {"override": "node", "nodeId": 10}),
    ("expired_user_override_falls_to_the_node", colour_flag(EVERYONE),
     [user_override("orange", PAST), node_override(1, "green")], "green",
     Reason.TARGETING_MATCH, {"override": "node", "nodeId": 1}),
    ("override_of_a_removed_variant_falls_through", colour_flag(EVERYONE),
     [user_override("purple")], "orange", Reason.TARGETING_MATCH, {"rule": "everyone"}),
    ("rules_run_in_order_first_match_wins", colour_flag(ENTERPRISE, EVERYONE), [],
     "green", Reason.TARGETING_MATCH, {"rule": "enterprise"}),
    ("a_rule_that_does_not_hold_is_skipped", colour_flag(NOBODY, EVERYONE), [],
     "orange", Reason.TARGETING_MATCH, {"rule": "everyone"}),
    ("a_segment_rule_names_its_segment", colour_flag(rule("staff", variant="green", segment=STAFF)),
     [], "green", Reason.TARGETING_MATCH, {"rule": "staff", "segment": "acme-staff"}),
    ("rules_beat_the_rollout", colour_flag(ENTERPRISE, rollout="0"), [], "green",
     Reason.TARGETING_MATCH, {"rule": "enterprise"}),
    ("no_rule_holds_rollout_decides", colour_flag(NOBODY, rollout="100"), [], "blue",
     Reason.DEFAULT, {}),
    ("zero_rollout_serves_the_off_variant", colour_flag(NOBODY, rollout="0"), [], "blue",
     Reason.DEFAULT, {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("definition", "overrides", "variant", "reason", "metadata"),
    [case[1:] for case in PRECEDENCE],
    ids=[case[0] for case in PRECEDENCE],
)
def test_precedence(definition: FlagDefinition, overrides: list[FlagOverride], variant: str,
                    reason: Reason, metadata: dict[str, Any]) -> None:  # fmt: skip
    result = evaluate_flag(definition, context(), overrides, NOW)
    assert (result.variant, result.value, result.reason) == (variant, COLOURS[variant], reason)
    assert dict(result.metadata) == metadata


def test_a_segment_that_does_not_hold_stops_its_rule() -> None:
    staff_rule = rule("staff", variant="green", segment=STAFF)
    result = evaluate_flag(colour_flag(staff_rule), context("vic@globex.example"), [], NOW)
    assert (result.variant, result.reason) == ("blue", Reason.DEFAULT)


def test_a_rule_reads_the_ofrep_context() -> None:
    eu = colour_flag(rule("eu", cond("context.country", "in", "FR", "DE"), variant="green"))
    assert evaluate_flag(eu, context(country="FR"), [], NOW).variant == "green"
    assert evaluate_flag(eu, context(country="US"), [], NOW).variant == "blue"
    assert evaluate_flag(eu, context(), [], NOW).variant == "blue"


def test_a_rule_split_and_the_rollout_split_are_weighted_and_stable() -> None:
    split = (("blue", 50), ("green", 50))
    by_rule = colour_flag(rule("ab", split=split), rollout="0")
    served = Counter(
        evaluate_flag(by_rule, EvaluationContext(uid, PATH), [], NOW).variant
        for uid in range(20_000)
    )
    assert set(served) == {"blue", "green"}
    assert abs(served["blue"] / 20_000 - 0.5) < 0.02
    in_rollout_split = colour_flag(rollout="100", split=(("green", 1), ("orange", 3)))
    served = Counter(
        evaluate_flag(in_rollout_split, EvaluationContext(uid, PATH), [], NOW).variant
        for uid in range(20_000)
    )
    assert abs(served["orange"] / 20_000 - 0.75) < 0.02
    assert {evaluate_flag(in_rollout_split, EvaluationContext(7, PATH), [], NOW).reason} == {
        Reason.SPLIT
    }


def test_raising_the_rollout_never_moves_a_user_between_variants() -> None:
    split = (("green", 1), ("orange", 1))
    before = {uid: pick_variant("button-colour", uid, split) for uid in range(5_000)}
    for percentage in ("10", "60", "100"):
        flag = colour_flag(rollout=percentage, split=split)
        for uid, variant in before.items():
            result = evaluate_flag(flag, EvaluationContext(uid, PATH), [], NOW)
            if in_rollout("button-colour", uid, Decimal(percentage)):
                assert result.variant == variant
            else:
                assert result.variant == "blue"


def test_boolean_flags_migrated_to_variants_answer_as_before() -> None:
    legacy = FlagDefinition(3, "dark-mode", "Dark", True, Decimal("50"), False, 1)
    for uid in range(2_000):
        result = evaluate_flag(legacy, EvaluationContext(uid, PATH), [], NOW)
        assert result.value is in_rollout("dark-mode", uid, Decimal("50"))
        assert result.variant == ("on" if result.value else "off")


LOOKUPS = [
    ("user.email", "uma@acme.example"),
    ("user.email_domain", "acme.example"),
    ("user.id", "42"),
    ("organization.id", "1"),
    ("organization.slug", "acme"),
    ("organization.settings.plan", "enterprise"),
    ("organization.settings.limits.seats", 50),
    ("organization.settings.nothing", MISSING),
    ("context.app.version", "2.3.0"),
    ("context.absent", MISSING),
]


@pytest.mark.parametrize(("attribute", "value"), LOOKUPS, ids=[a for a, _ in LOOKUPS])
def test_attributes(attribute: str, value: Any) -> None:
    ctx = EvaluationContext(USER, PATH, "Uma@ACME.example", ACME, {"app": {"version": "2.3.0"}})
    assert ctx.lookup(attribute) == value


OPERATORS = [
    # operator, values, attribute value, holds
    ("in", ["a", "b"], "b", True), ("in", ["a", "b"], "c", False), ("in", [1, 2], 2, True),
    ("not_in", ["a"], "b", True), ("not_in", ["a"], "a", False),
    ("equals", ["x"], "x", True), ("not_equals", ["x"], "x", False),
    ("starts_with", ["ab", "zz"], "abc", True), ("ends_with", [".fr"], "shop.fr", True),
    ("contains", ["mid"], "amidst", True), ("contains", ["mid"], "nope", False),
    ("lt", [10], 9.5, True), ("lte", [10], 10, True), ("gt", [10], "11", True),
    ("gte", [10], 9, False), ("gt", [10], "ten", False), ("lt", [10], True, False),
    ("semver_gte", ["2.0.0"], "2.10.1", True), ("semver_lt", ["2.0.0"], "2.0.0-rc.1", True),
    ("semver_eq", ["1.2.3"], "v1.2.3", True), ("semver_gt", ["1.0.0"], "1.0", False),
    ("before", ["2026-01-01"], "2025-12-31T23:59:59Z", True),
    ("after", ["2026-01-01T00:00:00+01:00"], "2025-12-31T23:30:00Z", True),
    ("after", ["2026-01-01"], 1_800_000_000, True), ("before", ["2026-01-01"], "soon", False),
    ("matches", ["^[A-Z]{2}-\\d+$"], "FR-75", True), ("matches", ["^a"], "ba", False),
    ("matches", ["(a+)+$"], "a" * 4000 + "b", False),
    ("matches", ["a"], "a" * 5000, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("operator", "values", "value", "holds"),
    OPERATORS,
    ids=[f"{o}-{i}" for i, (o, *_) in enumerate(OPERATORS)],
)
def test_operators(operator: str, values: list[Any], value: Any, holds: bool) -> None:
    (condition,) = compile_conditions([cond("context.x", operator, *values)])
    assert condition.holds(lambda name: value) is holds


@pytest.mark.parametrize("operator", ["in", "not_in", "equals", "not_equals", "lt", "matches"])
def test_an_absent_attribute_never_matches(operator: str) -> None:
    values = [1] if operator == "lt" else ["x"]
    (condition,) = compile_conditions([cond("context.x", operator, *values)])
    assert condition.holds(lambda name: MISSING) is False


BAD = [
    ("not_a_list", {"attribute": "user.email"}, "conditions must be a list"),
    ("unknown_attribute", [cond("user.age", "in", "1")], "condition 1: attribute must be one of"),
    ("empty_context_name", [cond("context.", "in", "1")], "condition 1: attribute must be"),
    ("unknown_operator", [cond("user.email", "like", "x")], "operator 'like' is not one of"),
    ("no_values", [cond("user.email", "in")], "values must be a list of 1 to 1000"),
    ("two_values_for_lt", [cond("context.n", "lt", 1, 2)], "lt takes exactly one value"),
    ("text_for_a_number", [cond("context.n", "gt", "5")], "gt needs a number"),
    ("bad_version", [cond("context.v", "semver_gt", "two")], "'two' is not a semantic version"),
    ("bad_date", [cond("context.d", "before", "tomorrow")], "'tomorrow' is not an ISO 8601"),
    ("bad_pattern", [cond("context.p", "matches", "(a")], "'(a' is not a valid pattern"),
    ("long_pattern", [cond("context.p", "matches", "a" * 501)], "1 to 500 characters"),
    ("extra_field", [{**cond("user.email", "in", "x"), "negate": True}], "unknown field 'negate'"),
    ("second_is_bad", [cond("user.email", "in", "x"), "nope"], "condition 2: must be an object"),
    ("backreference", [cond("context.p", "matches", "(a)\\1")], "is not a valid pattern"),
]


@pytest.mark.parametrize(("raw", "sentence"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_conditions_are_refused_with_a_sentence(raw: Any, sentence: str) -> None:
    with pytest.raises(ConditionError) as refused:
        compile_conditions(raw)
    assert sentence in str(refused.value)
