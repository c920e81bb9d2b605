"""The one validation of flags, overrides, rules, segments and scheduled changes, used by
the admin API and the admin UI alike (docs/FLAGS.md).

The functions take `Any` because the admin UI sends untyped values; they return the cleaned
values, raise `InvalidInput` (422, naming the field) with a sentence, or `Conflict` (409)
for a state that forbids the change. Rules that need the database (a variant still named
somewhere, the flag's pattern budget) are async: they read through `api.flags.queries` and
decide here; everything else is pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from api.flags import queries
from api.flags.bounds import (
    INTEGER_LIMIT,
    MAX_DEFINITION_BYTES,
    MAX_FLAG_PROGRAM,
    MAX_OBJECT_VARIANT_BYTES,
    MAX_RULE_BYTES,
    MAX_SEGMENT_BYTES,
    USER_ID_LIMIT,
    encoded_size,
    finite_number,
    whole_number,
)
from api.flags.conditions import ConditionError, compile_conditions, pattern_cost
from api.hierarchy.rules import invalid as _invalid
from api.hierarchy.rules import validate_expiry, validate_name
from api.platform.http.errors import Conflict
from tables.enums import FlagType, ScheduleAction, ScheduleStatus
from tables.flags import (
    BOOLEAN_VARIANTS,
    FLAG_KEY_PATTERN,
    VARIANT_PATTERN,
)

KEY = re.compile(FLAG_KEY_PATTERN)
VARIANT = re.compile(VARIANT_PATTERN)
MAX_VARIANTS = 50
MAX_WEIGHT = 10_000
MAX_STRING_VALUE = 10_000
MAX_POSITION = 1_000_000
FLAG_TYPES = ", ".join(FlagType)
ACTIONS = ", ".join(ScheduleAction)
DEFINITION_FIELDS = ("flag_type", "variants", "default_variant", "off_variant", "rollout_split")
"""The fields of a flag that are checked together: variants against the type, names
against the variants."""


def require_current_version(current: int, sent: int) -> None:
    """Optimistic concurrency: a change made from an older read of the flag is refused (409),
    so no change is silently overwritten. The database trigger only bumps the version."""
    if sent != current:
        raise Conflict(
            "The flag changed since you read it; reload and retry",
            extra={"reason": "stale_version", "current_version": current},
        )


def validate_key(key: Any, field: str = "key") -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= 100 or not KEY.match(key):
        raise _invalid(field, f"{field} must be a lower-case slug such as `new-dashboard`")
    return key


def validate_description(description: Any) -> str:
    if not isinstance(description, str) or len(description) > 5000:
        raise _invalid("description", "description must be text of at most 5000 characters")
    return description


def _percentage(value: Any, field: str) -> Decimal:
    if isinstance(value, bool):
        raise _invalid(field, f"{field} must be a number")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _invalid(field, f"{field} must be a number") from None
    if not number.is_finite() or not Decimal(0) <= number <= Decimal(100):
        raise _invalid(field, f"{field} must be within 0 and 100")
    if number != number.quantize(Decimal("0.01")):
        raise _invalid(field, f"{field} allows two decimals at most")
    return number.quantize(Decimal("0.01"))


def validate_rollout(value: Any) -> Decimal:
    return _percentage(value, "rollout_percentage")


# ---- variants ------------------------------------------------------------------------------


def validate_flag_type(value: Any) -> str:
    if not isinstance(value, str) or value not in set(FlagType):
        raise _invalid("flag_type", f"flag_type must be one of {FLAG_TYPES}")
    return str(value)


def _variant_value(flag_type: str, name: str, value: Any) -> Any:
    """The value as served, or None when it does not have the flag's type."""
    if flag_type == FlagType.boolean:
        return value if isinstance(value, bool) else None
    if flag_type == FlagType.string:
        return value if isinstance(value, str) and len(value) <= MAX_STRING_VALUE else None
    if flag_type == FlagType.integer:
        return whole_number(value, -INTEGER_LIMIT, INTEGER_LIMIT)
    if flag_type == FlagType.float:
        return finite_number(value)
    if not isinstance(value, dict) or encoded_size(value) > MAX_OBJECT_VARIANT_BYTES:
        return None
    return value


TYPE_WORDS = {
    FlagType.boolean: "true or false",
    FlagType.string: f"text of at most {MAX_STRING_VALUE} characters",
    FlagType.integer: "a whole number",
    FlagType.float: "a number",
    FlagType.object: "a JSON object",
}
TYPE_BOUNDS = {
    FlagType.integer: f" (within ±{INTEGER_LIMIT})",
    FlagType.float: f" (finite; integers within ±{INTEGER_LIMIT})",
    FlagType.object: f" (at most {MAX_OBJECT_VARIANT_BYTES // 1024} KiB encoded)",
}


def validate_variant_name(name: Any, field: str = "variants") -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 100 or not VARIANT.match(name):
        raise _invalid(
            field,
            f"{field}: {name!r} is not a variant name (letters and digits, single - _ or ."
            " between them, at most 100 characters)",
        )
    return name


def validate_variants(flag_type: str, variants: Any) -> dict[str, Any]:
    """1 to 50 named values, each of the flag's type; floats are served as floats."""
    if not isinstance(variants, dict) or not 1 <= len(variants) <= MAX_VARIANTS:
        raise _invalid(
            "variants", f"variants must be an object of 1 to {MAX_VARIANTS} named values"
        )
    cleaned: dict[str, Any] = {}
    for name, value in variants.items():
        validate_variant_name(name)
        typed = _variant_value(flag_type, name, value)
        if typed is None:
            raise _invalid(
                "variants",
                f"variants: the value of {name!r} must be {TYPE_WORDS[FlagType(flag_type)]}"
                f" for {'an' if flag_type[0] in 'aeiou' else 'a'} {flag_type} flag"
                f"{TYPE_BOUNDS.get(FlagType(flag_type), '')}",
            )
        cleaned[name] = typed
    return cleaned


def require_variant(name: Any, variants: Mapping[str, Any], field: str) -> str:
    """`name` is one of the flag's variants."""
    if not isinstance(name, str) or name not in variants:
        known = ", ".join(sorted(variants))
        raise _invalid(field, f"{field} must be one of the flag's variants: {known}")
    return name


def validate_split(split: Any, variants: Mapping[str, Any], field: str) -> dict[str, int]:
    """Weights by variant name: existing variants, whole numbers 0-10000, a positive sum."""
    if not isinstance(split, dict) or not split:
        raise _invalid(field, f"{field} must be an object of variant names and weights")
    cleaned: dict[str, int] = {}
    for name, weight in split.items():
        require_variant(name, variants, field)
        whole = whole_number(weight, 0, MAX_WEIGHT)
        if whole is None:
            raise _invalid(
                field, f"{field}: the weight of {name!r} must be a whole number from 0 to 10000"
            )
        cleaned[name] = whole
    if sum(cleaned.values()) <= 0:
        raise _invalid(field, f"{field}: the weights must add up to more than 0")
    return cleaned


def validate_definition(row: Mapping[str, Any]) -> dict[str, Any]:
    """A flag's type, variants, default and off variants and rollout split, checked together
    (on the whole row as it will be stored); returns the five fields cleaned."""
    flag_type = validate_flag_type(row.get("flag_type"))
    variants = validate_variants(flag_type, row.get("variants"))
    split = row.get("rollout_split")
    size = encoded_size(variants) + encoded_size(split)
    if size > MAX_DEFINITION_BYTES:
        raise _invalid(
            "variants",
            f"variants: the variants and rollout split come to {size} bytes encoded; the"
            f" limit is {MAX_DEFINITION_BYTES // 1024} KiB per flag",
        )
    return {
        "flag_type": flag_type,
        "variants": variants,
        "default_variant": require_variant(row.get("default_variant"), variants, "default_variant"),
        "off_variant": require_variant(row.get("off_variant"), variants, "off_variant"),
        "rollout_split": None
        if split is None
        else validate_split(split, variants, "rollout_split"),
    }


def new_flag_definition(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A new flag's definition: a boolean flag may leave out its variants (on/off)."""
    row = dict(fields)
    if row.get("flag_type", FlagType.boolean) == FlagType.boolean:
        row.setdefault("flag_type", FlagType.boolean.value)
        row.setdefault("variants", dict(BOOLEAN_VARIANTS))
        row.setdefault("default_variant", "on")
        row.setdefault("off_variant", "off")
    return validate_definition(row)


def validate_flag_changes(
    changes: dict[str, Any], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate the given fields of a flag; returns them cleaned. When any definition field
    changes, the definition is checked whole against `current` (the row before the change;
    None for a new flag)."""
    validators: dict[str, Callable[[Any], Any]] = {
        "key": validate_key,
        "name": validate_name,
        "description": validate_description,
        "rollout_percentage": validate_rollout,
    }
    cleaned: dict[str, Any] = {}
    for field, value in changes.items():
        if field in validators:
            cleaned[field] = validators[field](value)
        elif field in ("enabled", "archived"):
            if not isinstance(value, bool):
                raise _invalid(field, f"{field} must be true or false")
            cleaned[field] = value
        elif field not in DEFINITION_FIELDS:
            raise _invalid(field, f"{field} cannot be set")
    touched = [field for field in DEFINITION_FIELDS if field in changes]
    if current is None:
        definition = new_flag_definition({f: changes[f] for f in touched})
        cleaned.update(definition)
    elif touched:
        definition = validate_definition({**current, **{f: changes[f] for f in touched}})
        cleaned.update({f: definition[f] for f in touched})
    return cleaned


async def require_variants_unused(
    flag_id: int, before: Mapping[str, Any], after: Mapping[str, Any]
) -> None:
    """A flag update (variants `before` → `after`) may not remove a variant that an
    override, a rule or a pending scheduled change of the flag still names (422 naming the
    first)."""
    names = sorted(set(before) - set(after))
    if not names:
        return
    named = await queries.override_naming_variant(flag_id, names)
    if named is not None:
        raise _still_named(named, "an override")
    named = await queries.pending_schedule_naming_variant(flag_id, names)
    if named is not None:
        raise _still_named(named, "a pending scheduled change")
    for rule in await queries.rule_variants(flag_id):
        named_by_rule = {rule["variant"]} | set(rule["split"] or {})
        for variant in names:
            if variant in named_by_rule:
                raise _still_named(variant, f"the rule {rule['name']!r}")


def _still_named(variant: str, by: str) -> Exception:
    return _invalid("variants", f"variants: {variant!r} is still named by {by}; change that first")


# ---- overrides -----------------------------------------------------------------------------


def override_variant(flag_type: str, variant: Any, enabled: Any) -> Any:
    """The variant an override names; `enabled: true/false` is shorthand for a boolean
    flag's "on"/"off"."""
    if enabled is None:
        if variant is None:
            raise _invalid("variant", "variant is required")
        return variant
    if variant is not None:
        raise _invalid("variant", "give variant or enabled, not both")
    if flag_type != FlagType.boolean:
        raise _invalid("enabled", "enabled is shorthand for boolean flags; give variant")
    if not isinstance(enabled, bool):
        raise _invalid("enabled", "enabled must be true or false")
    return "on" if enabled else "off"


def validate_override(
    *,
    user_id: Any,
    node_id: Any,
    variant: Any,
    variants: Mapping[str, Any],
    reason: Any,
    expires_at: datetime | None,
    now: datetime | None = None,
) -> None:
    """Exactly one target; one of the flag's variants; a reason of sane length; an expiry,
    if any, in the future."""
    if (user_id is None) == (node_id is None):
        raise _invalid("target", "give exactly one of user_id or node_id")
    for field, value in (("user_id", user_id), ("node_id", node_id)):
        if value is not None and whole_number(value, 1, USER_ID_LIMIT) is None:
            raise _invalid(field, f"{field} must be a positive integer (at most {USER_ID_LIMIT})")
    require_variant(variant, variants, "variant")
    if not isinstance(reason, str) or len(reason) > 1000:
        raise _invalid("reason", "reason must be text of at most 1000 characters")
    validate_expiry(expires_at, now)


# ---- conditions, rules and segments --------------------------------------------------------


def validate_conditions(raw: Any) -> list[Any]:
    """The conditions of a rule or segment, compiled once to prove they can be evaluated."""
    try:
        compile_conditions(raw)
    except ConditionError as error:
        sentence = str(error)
        if not sentence.startswith("condition"):
            sentence = f"conditions: {sentence}"
        raise _invalid("conditions", sentence) from None
    return list(raw)


def _position(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_POSITION:
        raise _invalid(
            "position", f"position must be a whole number from -{MAX_POSITION} to {MAX_POSITION}"
        )
    return value


def _rule_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 100:
        raise _invalid("name", "name must be 1 to 100 characters")
    return value.strip()


def _segment_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= USER_ID_LIMIT:
        raise _invalid("segment_id", "segment_id must be a positive integer or null")
    return value


def validate_rule(
    changes: Mapping[str, Any], row: Mapping[str, Any], variants: Mapping[str, Any]
) -> dict[str, Any]:
    """A rule's changed fields, cleaned; `row` is the rule as it will be stored (changes
    applied), checked for exactly one of variant and split, naming the flag's variants."""
    cleaners: dict[str, Callable[[Any], Any]] = {
        "name": _rule_name,
        "position": _position,
        "conditions": validate_conditions,
        "segment_id": _segment_id,
    }
    cleaned: dict[str, Any] = {}
    for field, value in changes.items():
        if field in cleaners:
            cleaned[field] = cleaners[field](value)
        elif field not in ("variant", "split", "flag_id"):
            raise _invalid(field, f"{field} cannot be set")
    variant, split = row.get("variant"), row.get("split")
    if (variant is None) == (split is None):
        raise _invalid("variant", "give exactly one of variant or split")
    if "variant" in changes:
        cleaned["variant"] = (
            None if variant is None else require_variant(variant, variants, "variant")
        )
    elif variant is not None:
        require_variant(variant, variants, "variant")
    if split is not None:
        checked_split = validate_split(split, variants, "split")
        if "split" in changes:
            cleaned["split"] = checked_split
    elif "split" in changes:
        cleaned["split"] = None
    size = encoded_size(row.get("conditions")) + encoded_size(split)
    if size > MAX_RULE_BYTES:
        raise _invalid(
            "conditions",
            f"conditions: the rule's conditions and split come to {size} bytes encoded; the"
            f" limit is {MAX_RULE_BYTES // 1024} KiB per rule",
        )
    return cleaned


def validate_segment(changes: Mapping[str, Any]) -> dict[str, Any]:
    """A segment's changed fields, cleaned: key slug, name, description, conditions."""
    cleaners: dict[str, Callable[[Any], Any]] = {
        "key": validate_key,
        "name": validate_name,
        "description": validate_description,
        "conditions": validate_conditions,
    }
    cleaned: dict[str, Any] = {}
    for field, value in changes.items():
        if field not in cleaners:
            raise _invalid(field, f"{field} cannot be set")
        cleaned[field] = cleaners[field](value)
    if "conditions" in cleaned and (size := encoded_size(cleaned["conditions"])) > (
        MAX_SEGMENT_BYTES
    ):
        raise _invalid(
            "conditions",
            f"conditions: the segment's conditions come to {size} bytes encoded; the limit is"
            f" {MAX_SEGMENT_BYTES // 1024} KiB per segment",
        )
    return cleaned


async def require_flag_pattern_budget(flag_id: Any, rule_id: int | None, conditions: Any) -> None:
    """A rule written with `conditions` (None: unchanged) keeps the RE2 program size of all
    the flag's rules within MAX_FLAG_PROGRAM; `rule_id` is the rule rewritten, if any."""
    if conditions is None or not isinstance(flag_id, int):
        return
    total = _cost(conditions)
    for stored in await queries.other_rule_conditions(flag_id, rule_id):
        total += _cost(stored)
    if total > MAX_FLAG_PROGRAM:
        raise _invalid(
            "conditions",
            f"conditions: the flag's patterns would be too costly to match together (RE2"
            f" program size {total}; the limit is {MAX_FLAG_PROGRAM} per flag)",
        )


def _cost(raw: Any) -> int:
    try:
        return pattern_cost(compile_conditions(raw))
    except ConditionError:
        return 0  # a stored rule that no longer compiles is never served


# ---- scheduled changes ---------------------------------------------------------------------


def validate_schedule(
    *,
    action: Any,
    run_at: Any,
    rollout_percentage: Any,
    variant: Any,
    note: Any,
    variants: Mapping[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """A new scheduled change: a known action with its argument (and no other), a run time
    in the future. Returns the row's fields cleaned."""
    if not isinstance(action, str) or action not in set(ScheduleAction):
        raise _invalid("action", f"action must be one of {ACTIONS}")
    wants_rollout = action == ScheduleAction.set_rollout
    wants_variant = action == ScheduleAction.set_default_variant
    if wants_rollout and rollout_percentage is None:
        raise _invalid("rollout_percentage", "set_rollout needs a rollout_percentage")
    if not wants_rollout and rollout_percentage is not None:
        raise _invalid("rollout_percentage", f"{action} takes no rollout_percentage")
    if wants_variant and variant is None:
        raise _invalid("variant", "set_default_variant needs a variant")
    if not wants_variant and variant is not None:
        raise _invalid("variant", f"{action} takes no variant")
    if not isinstance(run_at, datetime) or run_at.tzinfo is None:
        raise _invalid("run_at", "run_at must be a date-time with a time zone")
    if run_at <= (now or datetime.now(UTC)):
        raise _invalid("run_at", "run_at must be in the future")
    if not isinstance(note, str) or len(note) > 1000:
        raise _invalid("note", "note must be text of at most 1000 characters")
    return {
        "action": str(action),
        "run_at": run_at,
        "rollout_percentage": _percentage(rollout_percentage, "rollout_percentage")
        if wants_rollout
        else None,
        "variant": require_variant(variant, variants, "variant") if wants_variant else None,
        "note": note,
    }


def validate_schedule_change(status: str, changes: Mapping[str, Any]) -> None:
    """After creation a scheduled change can only be cancelled, and only while pending."""
    for field, value in changes.items():
        if field != "status":
            raise _invalid(field, f"{field} cannot be changed after the change is scheduled")
        if value != ScheduleStatus.cancelled:
            raise _invalid("status", "status can only be changed to cancelled")
    if "status" in changes and status != ScheduleStatus.pending:
        raise Conflict(
            f"Only a pending change can be cancelled; this one is {status}",
            extra={"field": "status", "status": status},
        )
