"""Errors as values of a few exception classes, mapped in one place to JSON responses.

No stack trace ever reaches a client. Database trouble becomes 503 (`database_unavailable`
or `schema_not_ready`), constraint violations become 409/422, anything else unexpected is a
logged 500 — which the test suite treats as a bug.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from api.request_context import current_request_id

logger = logging.getLogger("api.errors")

STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class AppError(Exception):
    """Base of the domain's errors: a status, a stable machine-readable code, a message."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers = headers


class BadRequest(AppError):
    status_code, code = 400, "bad_request"


class InvalidInput(AppError):
    status_code, code = 422, "validation_error"


class NotAuthenticated(AppError):
    status_code, code = 401, "not_authenticated"


class Forbidden(AppError):
    status_code, code = 403, "forbidden"


class NotFound(AppError):
    status_code, code = 404, "not_found"


class Conflict(AppError):
    status_code, code = 409, "conflict"


class PreconditionFailed(AppError):
    status_code, code = 412, "precondition_failed"


class RateLimited(AppError):
    status_code, code = 429, "rate_limited"


class ServiceUnavailable(AppError):
    status_code, code = 503, "service_unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"


class SchemaNotReady(ServiceUnavailable):
    code = "schema_not_ready"


class UpstreamUnavailable(ServiceUnavailable):
    code = "upstream_unavailable"


def error_body(
    status_code: int, code: str, detail: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status_code, "error": code, "detail": detail}
    if extra:
        body["extra"] = extra
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    return body


def _respond(
    status_code: int,
    code: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    headers = dict(headers or {})
    if status_code == 503:
        headers.setdefault("Retry-After", "1")
    return Response(
        content=error_body(status_code, code, detail, extra),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def app_error_handler(_: Request[Any, Any, Any], exc: AppError) -> Response[dict[str, Any]]:
    return _respond(exc.status_code, exc.code, exc.detail, exc.extra, exc.headers)


def http_exception_handler(
    _: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    status = exc.status_code
    code = STATUS_CODES.get(status, "error")
    if isinstance(exc, ValidationException):
        code = "validation_error"
    extra = (
        exc.extra if isinstance(exc.extra, dict) else ({"errors": exc.extra} if exc.extra else None)
    )
    if status >= 500:
        logger.error("http exception %s: %s", status, exc.detail)
    return _respond(status, code, exc.detail, extra, exc.headers)


def database_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Schema gaps and connection trouble are the operator's to fix: say so with a 503."""
    from api.schema import schema_gate

    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
        schema_gate.invalidate()
        logger.error("schema_not_ready: %s", exc)
        return _respond(503, "schema_not_ready", "The database schema is not up to date")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        constraint = getattr(exc, "constraint_name", None)
        extra = {"constraint": constraint} if constraint else None
        if isinstance(exc, asyncpg.UniqueViolationError | asyncpg.ForeignKeyViolationError):
            return _respond(409, "conflict", "The change conflicts with existing data", extra)
        return _respond(422, "validation_error", "The change violates a data rule", extra)
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return _respond(403, "forbidden", "The database refused this change")
    if isinstance(exc, asyncpg.DataError):
        return _respond(422, "validation_error", "A value is out of range or malformed")
    schema_gate.invalidate()
    logger.warning("database_unavailable: %s: %s", type(exc).__name__, exc)
    return _respond(503, "database_unavailable", "The database is unavailable; retry shortly")


def unexpected_error_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(500, "internal_error", "Internal Server Error")


DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)

EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    AppError: app_error_handler,
    HTTPException: http_exception_handler,
    **{error: database_error_handler for error in DATABASE_ERRORS},
    Exception: unexpected_error_handler,
}
