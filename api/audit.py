"""The one way to write an audit record (PRODUCT §3: append-only, never cascades away).

Call it inside the same transaction as the change it describes, so both land or neither.
"""

from __future__ import annotations

import json
from typing import Any

from litestar.connection import ASGIConnection

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
