"""Liveness and readiness, kept apart and honest (F7)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from api.schema import schema_gate


@get("/health", tags=["health"], operation_id="liveness", sync_to_thread=False)
def liveness() -> dict[str, str]:
    """200 while the process runs; touches no database."""
    return {"status": "ok"}


@get("/health/ready", tags=["health"], operation_id="readiness")
async def readiness() -> Response[dict[str, Any]]:
    """200 only when the database answers and no migration is pending; otherwise 503 and why."""
    status = await schema_gate.status(force=True)
    body: dict[str, Any] = {
        "status": "ready" if status.ready else "not_ready",
        "database": "ok" if status.database_ok else "unavailable",
        "pending_migrations": list(status.pending_migrations),
    }
    if status.cause:
        body["cause"] = status.cause
    if status.problem:
        body["detail"] = status.problem
    return Response(body, status_code=200 if status.ready else 503)
