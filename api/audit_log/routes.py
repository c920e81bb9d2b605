"""The super-admins' view of the audit trail (PRODUCT §3), newest first. Read-only: the
domain has routes, queries and schemas, and no service, rules or admin_ui of its own (the
admin's read-only audit table is configured in api/admin_ui/config.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from api.audit_log.queries import AuditFilter, audit_entries
from api.audit_log.schemas import AuditPage
from api.auth.deps import SUPER_ADMIN
from api.auth.identity import Caller


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
    filters = AuditFilter(actor_id, resource_type, resource_id, action, since, until, before_id)
    entries, more = await audit_entries(filters, limit)
    return AuditPage(entries, entries[-1].id if more else None)
