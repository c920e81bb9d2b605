"""The one way to write an audit record (PRODUCT §3: append-only, never cascades away).

Call it inside the same transaction as the change it describes, so both land or neither.
The row-level audit triggers stand aside for exactly the row this record names (resource
type and id, kept in the transaction-local `app.audited_rows`); every other row change in
the transaction, side effects included, is recorded by the triggers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from litestar.connection import ASGIConnection

from api.platform.config import settings_of
from api.platform.db.changes import change_transaction
from api.platform.db.sql import fetch
from api.platform.http.client_ip import client_ip
from api.platform.logging import current_request_id
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


class Actor(Protocol):
    """Who acts, as the audit trail records it (a signed-in person: `api.auth`'s Actor)."""

    @property
    def user_id(self) -> int | None: ...

    @property
    def email(self) -> str | None: ...


_noted: ContextVar[dict[str, Any] | None] = ContextVar("audit_noted", default=None)


@contextmanager
def audit_noted(**fields: Any) -> Iterator[None]:
    """Every audit record written in this block carries `fields` in its `after` (a bulk
    writer's reference, e.g. the flags import's document hash), so each row names the batch
    it came from."""
    token = _noted.set({**(_noted.get() or {}), **fields})
    try:
        yield
    finally:
        _noted.reset(token)


def _with_noted(snapshot: Snapshot) -> Snapshot:
    noted = _noted.get()
    if not noted:
        return snapshot
    base: dict[str, Any] = (
        msgspec.to_builtins(snapshot) if isinstance(snapshot, msgspec.Struct) else snapshot or {}
    )
    return {**base, **noted}


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
    actor: Actor | None,
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
        str(actor.user_id) if actor and actor.user_id is not None else "",
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
            after=_json(_with_noted(after)),
            request_id=current_request_id(),
            client_ip=ip,
        )
    )


async def act_as(actor: Actor, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
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
    actor: Actor | None,
    connection: ASGIConnection[Any, Any, Any, Any] | None,
    resource_id: str | int | None = None,
    before: Snapshot = None,
) -> AsyncIterator[AuditedChange]:
    """One transaction holding a write and its audit record: both land or neither.

    The block sets `after` (and `resource_id` when the write creates it, `action` when the
    write decides it, `skip` when nothing changed); the record is written as it ends.
    """
    change = AuditedChange(resource_id, before)
    async with change_transaction():
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
