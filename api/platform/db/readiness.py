"""Is the database reachable, and has every migration this code knows run? (F1, F7)

The answer for DB-backed routes is cached briefly (a "ready" answer for a few seconds, a
"not ready" one for a fraction of a second) so the check costs nothing on the hot path yet
notices a release, or a lost database, by itself without a restart. An expired "ready"
answer keeps serving while one background check replaces it: requests never queue behind
the check (it opens a connection of its own).

A late event loop is not a database outage (issue 19 #10): a handler holding the loop for
seconds made the check's timeout fire with the database's answer already waiting unread. So
the check measures how late the loop ran while it waited; a timeout during a stall is asked
again, and if the loop is still stalling the answer is `event_loop_stalled`, never
`database_unavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.types import ExceptionHandlersMap
from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.conf.apps import AppConfig, Finder

from api.platform.http.errors import DatabaseUnavailable, SchemaNotReady, error_response
from api.platform.http.strict_body import require_strict_body

logger = logging.getLogger("api.platform.db.readiness")

CHECK_TIMEOUT_SECONDS = 1.5
STALL_SECONDS = 0.25
"""A loop this late while the check waited makes its timeout the loop's fault, not the DB's."""
LAG_TICK_SECONDS = 0.05
READY_TTL_SECONDS = 5.0
NOT_READY_TTL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    database_ok: bool
    pending_migrations: tuple[str, ...] = ()
    problem: str | None = None
    checked_at: float = field(default_factory=time.monotonic)
    loop_stalled: bool = False
    """The database could not be judged: the event loop itself was too late to hear it."""

    @property
    def ready(self) -> bool:
        return self.database_ok and not self.pending_migrations and not self.loop_stalled

    @property
    def cause(self) -> str | None:
        if self.loop_stalled:
            return "event_loop_stalled"
        if not self.database_ok:
            return "database_unavailable"
        if self.pending_migrations:
            return "schema_not_ready"
        return None


@cache
def known_migrations() -> tuple[tuple[str, str], ...]:
    """(app, migration id) for every migration shipped with this code, in order."""
    finder = Finder()
    manager = BaseMigrationManager()
    found: list[tuple[str, str]] = []
    for app_name in manager.get_sorted_app_names():
        app_config: AppConfig = finder.get_app_config(app_name)
        modules = manager.get_migration_modules(app_config.resolved_migrations_folder_path)
        found.extend((app_name, migration_id) for migration_id in sorted(modules))
    return tuple(found)


async def _applied_migrations(engine: Any) -> set[tuple[str, str]]:
    try:
        rows = await engine.run_ddl("SELECT app_name, name FROM migration")
    except asyncpg.UndefinedTableError:
        return set()
    return {(row["app_name"], row["name"]) for row in rows}


class LoopLag:
    """How late the event loop ran while something was awaited: a ticker that notes how far
    past its due time each of its short sleeps ended (a tick still overdue counts too)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._worst = 0.0
        self._due = self._loop.time() + LAG_TICK_SECONDS
        self._ticker = self._loop.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            self._due = self._loop.time() + LAG_TICK_SECONDS
            await asyncio.sleep(LAG_TICK_SECONDS)
            self._worst = max(self._worst, self._loop.time() - self._due)

    def stop(self) -> float:
        """Stop measuring; the worst lateness seen, in seconds."""
        self._ticker.cancel()
        return max(self._worst, self._loop.time() - self._due)


def _unavailable(exc: BaseException) -> SchemaStatus:
    return SchemaStatus(database_ok=False, problem=f"{type(exc).__name__}: {exc}".strip())


async def check_schema() -> SchemaStatus:
    from piccolo.engine import engine_finder

    engine = engine_finder()
    stalled = 0.0
    for _ in range(2):
        lag = LoopLag()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                applied = await _applied_migrations(engine)
        except TimeoutError as exc:
            stalled = lag.stop()
            if stalled < STALL_SECONDS:
                return _unavailable(exc)
            continue  # the loop, not the database, was late: ask once more
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            lag.stop()
            return _unavailable(exc)
        lag.stop()
        break
    else:
        return SchemaStatus(
            database_ok=True,
            loop_stalled=True,
            problem=f"the event loop was blocked for {stalled:.1f} s while the database was asked",
        )
    pending = tuple(
        f"{app}:{migration}"
        for app, migration in known_migrations()
        if (app, migration) not in applied
    )
    return SchemaStatus(database_ok=True, pending_migrations=pending)


class SchemaGate:
    """Single-flight, briefly cached schema status shared by every request of a process."""

    def __init__(self) -> None:
        self._status: SchemaStatus | None = None
        self._lock = asyncio.Lock()
        self._recheck: asyncio.Task[SchemaStatus] | None = None

    def invalidate(self) -> None:
        self._status = None

    @property
    def last_status(self) -> SchemaStatus | None:
        """The latest answer, fresh or not (None before the first check or after a reset)."""
        return self._status

    def _fresh(self, status: SchemaStatus | None) -> bool:
        if status is None:
            return False
        ttl = READY_TTL_SECONDS if status.ready else NOT_READY_TTL_SECONDS
        return time.monotonic() - status.checked_at < ttl

    async def status(self, *, force: bool = False) -> SchemaStatus:
        status = self._status
        if not force and status is not None:
            if self._fresh(status):
                return status
            if status.ready and time.monotonic() - status.checked_at < 2 * READY_TTL_SECONDS:
                if self._recheck is None or self._recheck.done():
                    self._recheck = asyncio.get_running_loop().create_task(self._check())
                return status
        async with self._lock:
            if not force and self._fresh(self._status):
                assert self._status is not None
                return self._status
            self._status = await check_schema()
            return self._status

    async def _check(self) -> SchemaStatus:
        async with self._lock:
            self._status = await check_schema()
            return self._status

    async def ensure_ready(self) -> None:
        """503 for a lost database or a pending migration. A stalled loop says nothing
        about either, so the request goes on (its own statements still map DB errors)."""
        status = await self.status()
        if status.loop_stalled:
            return
        if not status.database_ok:
            raise DatabaseUnavailable("The database is unavailable; retry shortly")
        if status.pending_migrations:
            raise SchemaNotReady(
                "The database schema is behind this release; run the release step",
                extra={"pending_migrations": list(status.pending_migrations)},
            )


schema_gate = SchemaGate()


async def require_schema(*_: Any) -> None:
    """Runs before every DB-backed route: 503 instead of a 500 or a hang.

    A `before_request` hook rather than a guard: Litestar copies the route handler for
    every guard call, which this hot path does not need to pay for.
    """
    await schema_gate.ensure_ready()


async def require_schema_and_strict_body(request: Request[Any, Any, Any]) -> None:
    """The `before_request` of routers that take bodies: Litestar runs only the closest
    layer's hook, so a router that adds the strict-body rule must keep the gate itself."""
    await schema_gate.ensure_ready()
    await require_strict_body(request)


def database_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Schema gaps and connection trouble are the operator's to fix: say so with a 503, and
    have the gate check afresh. Constraint violations are the client's: 409/422."""
    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
        schema_gate.invalidate()
        logger.error("schema_not_ready: %s", exc)
        return error_response(503, "schema_not_ready", "The database schema is not up to date")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        constraint = getattr(exc, "constraint_name", None)
        extra = {"constraint": constraint} if constraint else None
        if isinstance(exc, asyncpg.UniqueViolationError | asyncpg.ForeignKeyViolationError):
            return error_response(409, "conflict", "The change conflicts with existing data", extra)
        return error_response(422, "validation_error", "The change violates a data rule", extra)
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return error_response(403, "forbidden", "The database refused this change")
    if isinstance(exc, asyncpg.DataError):
        return error_response(422, "validation_error", "A value is out of range or malformed")
    if isinstance(exc, asyncpg.SyntaxOrAccessError):
        # A statement of ours the server cannot run (syntax, ambiguous parameter types): a
        # bug, not an outage. Reported as one, and the readiness gate is left alone.
        logger.error("invalid SQL: %s: %s", type(exc).__name__, exc)
        return error_response(500, "internal_error", "Internal Server Error")
    schema_gate.invalidate()
    logger.warning("database_unavailable: %s: %s", type(exc).__name__, exc)
    return error_response(503, "database_unavailable", "The database is unavailable; retry shortly")


DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)

DATABASE_ERROR_HANDLERS: ExceptionHandlersMap = {
    error: database_error_handler for error in DATABASE_ERRORS
}
