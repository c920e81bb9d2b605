"""The typed answers of the audit trail's route (PRODUCT §3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


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
