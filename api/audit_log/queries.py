"""Reads of the append-only audit trail (nothing in the application updates or deletes it;
records are written by `api.platform.db.audit` and the database's triggers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from api.audit_log.schemas import AuditEntry
from tables.audit import AuditLog

AUDIT_ENTRY_COLUMNS = tuple(
    AuditLog._meta.get_column_by_name(name) for name in AuditEntry.__struct_fields__
)
"""The columns an entry shows, derived from the Struct so the two cannot drift."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries to list; None leaves a field unfiltered."""

    actor_id: int | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None


async def audit_entries(filters: AuditFilter, limit: int) -> tuple[list[AuditEntry], bool]:
    """Up to `limit` entries, newest first, and whether older ones remain."""
    query = AuditLog.select(*AUDIT_ENTRY_COLUMNS).output(load_json=True)
    conditions = [
        AuditLog.actor_id == filters.actor_id if filters.actor_id is not None else None,
        AuditLog.resource_type == filters.resource_type
        if filters.resource_type is not None
        else None,
        AuditLog.resource_id == filters.resource_id if filters.resource_id is not None else None,
        AuditLog.action == filters.action if filters.action is not None else None,
        AuditLog.occurred_at >= filters.since if filters.since is not None else None,
        AuditLog.occurred_at < filters.until if filters.until is not None else None,
        AuditLog.id < filters.before_id if filters.before_id is not None else None,
    ]
    for condition in conditions:
        if condition is not None:
            query = query.where(condition)
    rows = await query.order_by(AuditLog.id, ascending=False).limit(limit + 1)
    return [msgspec.convert(row, AuditEntry) for row in rows[:limit]], len(rows) > limit
