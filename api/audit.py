"""The one way to write an audit record (PRODUCT §3: append-only, never cascades away),
and the super-admins' view of the trail.

Call it inside the same transaction as the change it describes, so both land or neither.
The row-level audit triggers stand aside for exactly the row this record names (resource
type and id, kept in the transaction-local `app.audited_rows`); every other row change in
the transaction, side effects included, is recorded by the triggers.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.connection import ASGIConnection
from litestar.params import Parameter

from api.auth.guards import require_super_admin
from api.auth.identity import Caller, settings_of
from api.client_ip import client_ip
from api.db import fetch
from api.request_context import current_request_id


async def record_audit(
    *,
    action: str,
    resource_type: str,
    resource_id: str | int,
    actor: Caller | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    connection: ASGIConnection[Any, Any, Any, Any] | None = None,
) -> None:
    ip = client_ip(connection, settings_of(connection)) if connection is not None else None
    # This row is described by this record: its row trigger stands aside (this row only).
    # The triggers run at commit and record any other row changed in this transaction with
    # the same actor, request and client.
    await fetch(
        "SELECT set_config('app.audited_rows',"
        " coalesce(nullif(current_setting('app.audited_rows', true), ''), '|')"
        " || $1 || ':' || $2 || '|', true),"
        " set_config('app.actor_id', $3, true), set_config('app.actor_email', $4, true),"
        " set_config('app.request_id', $5, true), set_config('app.client_ip', $6, true)",
        resource_type,
        str(resource_id),
        str(actor.user_id) if actor else "",
        (actor.email or "") if actor else "",
        current_request_id() or "",
        ip or "",
    )
    await fetch(
        "INSERT INTO audit_logs (actor_id, actor_email, action, resource_type, resource_id,"
        " before, after, request_id, client_ip)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9)",
        actor.user_id if actor else None,
        actor.email if actor else None,
        action,
        resource_type,
        str(resource_id),
        json.dumps(before, default=str) if before is not None else None,
        json.dumps(after, default=str) if after is not None else None,
        current_request_id(),
        ip,
    )


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


class AuditPage(msgspec.Struct):
    entries: list[AuditEntry]
    next_cursor: int | None


@get(
    "/api/v1/admin/audit-logs",
    tags=["admin"],
    operation_id="listAuditLogs",
    guards=[require_super_admin],
)
async def list_audit_logs(
    actor_id: int | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: Annotated[int | None, Parameter(description="cursor: next_cursor of a page")] = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
) -> AuditPage:
    """The audit trail, newest first, filtered; follow `next_cursor` for older entries."""
    rows = await fetch(
        "SELECT id, occurred_at, actor_id, actor_email, action, resource_type, resource_id,"
        " before, after, request_id, client_ip FROM audit_logs"
        " WHERE ($1::int IS NULL OR actor_id = $1) AND ($2::text IS NULL OR resource_type = $2)"
        " AND ($3::text IS NULL OR resource_id = $3) AND ($4::text IS NULL OR action = $4)"
        " AND ($5::timestamptz IS NULL OR occurred_at >= $5)"
        " AND ($6::timestamptz IS NULL OR occurred_at < $6)"
        " AND ($7::bigint IS NULL OR id < $7) ORDER BY id DESC LIMIT $8",
        actor_id,
        resource_type,
        resource_id,
        action,
        since,
        until,
        before_id,
        limit + 1,
    )
    entries = [
        AuditEntry(
            **{
                **dict(row),
                "before": json.loads(row["before"]) if row["before"] else None,
                "after": json.loads(row["after"]) if row["after"] else None,
            }
        )
        for row in rows[:limit]
    ]
    return AuditPage(entries, entries[-1].id if len(rows) > limit else None)
