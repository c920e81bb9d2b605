"""Liveness and readiness, kept apart and honest (F7)."""

from __future__ import annotations

import msgspec
from litestar import Response, get
from litestar.openapi import ResponseSpec

from api.platform.db.readiness import schema_gate


@get("/health", tags=["health"], operation_id="liveness", sync_to_thread=False)
def liveness() -> dict[str, str]:
    """200 while the process runs; touches no database."""
    return {"status": "ok"}


class Readiness(msgspec.Struct, omit_defaults=True):
    status: str
    database: str
    pending_migrations: list[str]
    cause: str | None = None
    detail: str | None = None


@get(
    "/health/ready",
    tags=["health"],
    operation_id="readiness",
    responses={503: ResponseSpec(Readiness, description="Not ready, and why")},
)
async def readiness() -> Response[Readiness]:
    """200 only when the database answers and no migration is pending; otherwise 503 and why:
    `database_unavailable`, `schema_not_ready`, or `event_loop_stalled` when this process
    was too busy to hear the database (overloaded, not an outage)."""
    status = await schema_gate.status(force=True)
    body = Readiness(
        status="ready" if status.ready else "not_ready",
        database=(
            "unknown" if status.loop_stalled else "ok" if status.database_ok else "unavailable"
        ),
        pending_migrations=list(status.pending_migrations),
        cause=status.cause,
        detail=status.problem,
    )
    return Response(body, status_code=200 if status.ready else 503)
