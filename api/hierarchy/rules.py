"""Field rules shared by the REST API and the admin UI: one implementation of each.

They take `Any` because the admin UI sends untyped values; the API's msgspec Structs have
already checked the types, so for them only the value rules bite.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from api.platform.http.errors import STALE_SAVE, Conflict, Forbidden, InvalidInput
from tables.hierarchy import SLUG_PATTERN

SLUG = re.compile(SLUG_PATTERN)
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def invalid(field: str, message: str) -> InvalidInput:
    """The 422 naming the field at fault."""
    return InvalidInput(message, extra={"field": field})


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise invalid("name", "name must be 1 to 200 characters")
    return name.strip()


def validate_slug(slug: Any) -> str:
    if not isinstance(slug, str) or len(slug) > 100 or not SLUG.match(slug):
        raise invalid("slug", "slug must be lower-case letters, digits and single dashes")
    return slug


def validate_domains(domains: Any) -> list[str]:
    if not isinstance(domains, list) or len(domains) > 50:
        raise invalid("email_domains", "email_domains must be a list of at most 50 domains")
    cleaned = []
    for domain in domains:
        if not isinstance(domain, str) or not DOMAIN.match(domain.lower()):
            raise invalid("email_domains", f"{domain!r} is not a domain name")
        cleaned.append(domain.lower())
    return sorted(set(cleaned))


def validate_expiry(expires_at: datetime | None, now: datetime | None = None) -> None:
    """An expiry, when given, is an aware date-time in the future (overrides of both kinds)."""
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise invalid("expires_at", "expires_at must be a date-time with a time zone")
    if expires_at <= (now or datetime.now(UTC)):
        raise invalid("expires_at", "expires_at must be in the future")


def validate_grant_reason(reason: Any) -> str:
    """A permission override says why: 1 to 1000 characters."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000:
        raise invalid("reason", "a reason of 1 to 1000 characters is required")
    return reason.strip()


def validate_person_name(field: str, value: Any) -> str:
    """A person's display names: text of at most 200 characters (empty is allowed)."""
    if not isinstance(value, str) or len(value) > 200:
        raise invalid(field, f"{field} must be at most 200 characters")
    return value


def validate_managed_keys(keys: Any) -> list[str]:
    """The settings keys only super-admins change: at most 50 names of 1 to 100 characters."""
    if not isinstance(keys, list) or len(keys) > 50:
        raise invalid("managed_settings", "managed_settings must be a list of at most 50 keys")
    for key in keys:
        if not isinstance(key, str) or not 1 <= len(key) <= 100 or key != key.strip():
            raise invalid("managed_settings", f"{key!r} is not a settings key")
    return sorted(set(keys))


def require_managed_unchanged(
    managed: list[str], before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """Tenants edit their settings, but not the keys the platform manages (e.g. `plan`)."""
    old, new = before or {}, after or {}
    for key in managed:
        if (key in old) != (key in new) or old.get(key) != new.get(key):
            raise Forbidden(
                f"`{key}` is a managed setting: only super-admins change it",
                extra={"field": "settings", "key": key},
            )


def require_version(current: int, sent: int | None) -> None:
    """Optimistic concurrency: a change built on an older version of the row is refused."""
    if sent is not None and sent != current:
        raise Conflict(STALE_SAVE, extra={"field": "version", "version": current})
