"""The one validation of flag and override input, used by the admin API and the admin UI."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from api.errors import Conflict
from api.validation import invalid as _invalid
from api.validation import validate_expiry, validate_name
from tables.flags import FLAG_KEY_PATTERN

KEY = re.compile(FLAG_KEY_PATTERN)


def require_current_version(current: int, sent: int) -> None:
    """Optimistic concurrency: a change made from an older read of the flag is refused (409),
    so no change is silently overwritten. The database trigger only bumps the version."""
    if sent != current:
        raise Conflict(
            "The flag changed since you read it; reload and retry",
            extra={"reason": "stale_version", "current_version": current},
        )


def validate_key(key: Any) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= 100 or not KEY.match(key):
        raise _invalid("key", "key must be a lower-case slug such as `new-dashboard`")
    return key


def validate_description(description: Any) -> str:
    if not isinstance(description, str) or len(description) > 5000:
        raise _invalid("description", "description must be text of at most 5000 characters")
    return description


def validate_rollout(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise _invalid("rollout_percentage", "rollout_percentage must be a number")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _invalid("rollout_percentage", "rollout_percentage must be a number") from None
    if not number.is_finite() or not Decimal(0) <= number <= Decimal(100):
        raise _invalid("rollout_percentage", "rollout_percentage must be within 0 and 100")
    if number != number.quantize(Decimal("0.01")):
        raise _invalid("rollout_percentage", "rollout_percentage allows two decimals at most")
    return number.quantize(Decimal("0.01"))


def validate_flag_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate the given fields of a flag; returns them cleaned."""
    validators = {
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
        else:
            raise _invalid(field, f"{field} cannot be set")
    return cleaned


def validate_override(
    *,
    user_id: Any,
    node_id: Any,
    enabled: Any,
    reason: Any,
    expires_at: datetime | None,
    now: datetime | None = None,
) -> None:
    """Exactly one target; a reason of sane length; an expiry, if any, in the future."""
    if (user_id is None) == (node_id is None):
        raise _invalid("target", "give exactly one of user_id or node_id")
    for field, value in (("user_id", user_id), ("node_id", node_id)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise _invalid(field, f"{field} must be a positive integer")
    if not isinstance(enabled, bool):
        raise _invalid("enabled", "enabled must be true or false")
    if not isinstance(reason, str) or len(reason) > 1000:
        raise _invalid("reason", "reason must be text of at most 1000 characters")
    validate_expiry(expires_at, now)
