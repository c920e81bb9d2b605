"""The one way to write an audit record (PRODUCT §3: append-only, never cascades away),
and the super-admins' view of the trail.

Call it inside the same transaction as the change it describes, so both land or neither.
The row-level audit triggers stand aside for exactly the row this record names (resource
type and id, kept in the transaction-local `app.audited_rows`); every other row change in
the transaction, side effects included, is recorded by the triggers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from api.auth.deps import SUPER_ADMIN
from api.auth.identity import Caller, settings_of
from api.client_ip import client_ip
from api.db import engine, fetch
from api.log import current_request_id
from tables.audit import AuditLog

AUDIT_CONTEXT = (
    "SELECT set_config('app.audited_rows',"
    " coalesce(nullif(current_setting('app.audited_rows', true), ''), '|')"
    " || $1 || ':' || $2 || '|', true),"
    " set_config('app.actor_id', $3, true), set_config('app.actor_email', $4, true),"
    " set_config('app.request_id', $5, true), set_config('app.client_ip', $6, true)"
)
"""Tells the row-level audit triggers who acts and which row this record already names."""
ACTOR_CONTEXT = (
    "SELECT set_config('app.actor_id', $1, true), set_config('app.actor_email', $2, true),"
    " set_config('app.request_id', $3, true), set_config('app.client_ip', $4, true)"
)
"""Tells the row-level audit triggers who acts, for writes that no `record_audit` names."""

Snapshot = dict[str, Any] | msgspec.Struct | None


def _json(snapshot: Snapshot) -> str | None:
    if snapshot is None:
        return None
    if isinstance(snapshot, msgspec.Struct):
        snapshot = msgspec.to_builtins(snapshot)
    return json.dumps(snapshot, default=str)


async def record_audit(
    *,
    action: str,
    resource_type: str,
    resource_id: str | int,
    actor: Caller | None,
    before: Snapshot = None,
    after: Snapshot = None,
    connection: ASGIConnection[Any, Any, Any, Any] | None = None,
) -> None:
    ip = client_ip(connection, settings_of(connection)) if connection is not None else None
    # This row is described by this record: its row trigger stands aside (this row only).
    # The triggers run at commit and record any other row changed in this transaction with
    # the same actor, request and client.
    await fetch(
        AUDIT_CONTEXT,
        resource_type,
        str(resource_id),
        str(actor.user_id) if actor else "",
        (actor.email or "") if actor else "",
        current_request_id() or "",
        ip or "",
    )
    await AuditLog.insert(
        AuditLog(
            actor_id=actor.user_id if actor else None,
            actor_email=actor.email if actor else None,
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id),
            before=_json(before),
            after=_json(after),
            request_id=current_request_id(),
            client_ip=ip,
        )
    )


async def act_as(actor: Caller, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Inside a transaction: the audit triggers record its row changes as `actor`'s, with
    this request's id and client (used by the admin mount, whose writes Piccolo Admin makes)."""
    await fetch(
        ACTOR_CONTEXT,
        str(actor.user_id),
        actor.email or "",
        current_request_id() or "",
        client_ip(connection, settings_of(connection)) or "",
    )


@dataclass(slots=True)
class AuditedChange:
    """What an `audited_change` block records when it completes: fill in what it learns."""

    resource_id: str | int | None = None
    before: Snapshot = None
    after: Snapshot = None
    action: str | None = None
    skip: bool = False


@asynccontextmanager
async def audited_change(
    action: str,
    resource_type: str,
    *,
    actor: Caller | None,
    connection: ASGIConnection[Any, Any, Any, Any] | None,
    resource_id: str | int | None = None,
    before: Snapshot = None,
) -> AsyncIterator[AuditedChange]:
    """One transaction holding a write and its audit record: both land or neither.

    The block sets `after` (and `resource_id` when the write creates it, `action` when the
    write decides it, `skip` when nothing changed); the record is written as it ends.
    """
    change = AuditedChange(resource_id, before)
    async with engine().transaction():
        yield change
        if change.skip:
            return
        assert change.resource_id is not None, "an audited change names its resource"
        await record_audit(
            action=change.action or action,
            resource_type=resource_type,
            resource_id=change.resource_id,
            actor=actor,
            before=change.before,
            after=change.after,
            connection=connection,
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
