"""The super-admins' view of the audit trail (PRODUCT §3), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from api.auth.deps import SUPER_ADMIN
from api.auth.identity import Caller
from tables.audit import AuditLog


class AuditEntry(msgspec.Struct):
    id: int
    occurred_at: datetime
    actor_id: int | None
    actor_email: str | None
    action: str
    resource_type: str
    resource_id: str
    before: Any
    after: Any
    request_id: str | None
    client_ip: str | None


AUDIT_ENTRY_COLUMNS = (
    AuditLog.id,
    AuditLog.occurred_at,
    AuditLog.actor_id,
    AuditLog.actor_email,
    AuditLog.action,
    AuditLog.resource_type,
    AuditLog.resource_id,
    AuditLog.before,
    AuditLog.after,
    AuditLog.request_id,
    AuditLog.client_ip,
)


class AuditPage(msgspec.Struct):
    entries: list[AuditEntry]
    next_cursor: int | None


@get(
    "/api/v1/admin/audit-logs",
    tags=["admin"],
    operation_id="listAuditLogs",
    dependencies=SUPER_ADMIN,
)
async def list_audit_logs(
    caller: NamedDependency[Caller],
    actor_id: FromQuery[int | None] = None,
    resource_type: FromQuery[str | None] = None,
    resource_id: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    before_id: Annotated[
        int | None, QueryParameter(description="cursor: next_cursor of a page")
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
) -> AuditPage:
    """The audit trail, newest first, filtered; follow `next_cursor` for older entries."""
    query = AuditLog.select(*AUDIT_ENTRY_COLUMNS).output(load_json=True)
    filters = [
        AuditLog.actor_id == actor_id if actor_id is not None else None,
        AuditLog.resource_type == resource_type if resource_type is not None else None,
        AuditLog.resource_id == resource_id if resource_id is not None else None,
        AuditLog.action == action if action is not None else None,
        AuditLog.occurred_at >= since if since is not None else None,
        AuditLog.occurred_at < until if until is not None else None,
        AuditLog.id < before_id if before_id is not None else None,
    ]
    for condition in filters:
        if condition is not None:
            query = query.where(condition)
    rows = await query.order_by(AuditLog.id, ascending=False).limit(limit + 1)
    entries = [msgspec.convert(row, AuditEntry) for row in rows[:limit]]
    return AuditPage(entries, entries[-1].id if len(rows) > limit else None)
