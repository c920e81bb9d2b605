"""Errors as values of a few exception classes, mapped in one place to JSON responses.

No stack trace ever reaches a client; anything unexpected is a logged 500 — which the test
suite treats as a bug. Database trouble (503, or 409/422 for constraint violations) is mapped
next to the schema gate it resets: `api.platform.db.readiness.DATABASE_ERROR_HANDLERS`.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from api.platform.logging import current_request_id

logger = logging.getLogger("api.platform.http.errors")

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


STALE_SAVE = "changed by someone else since you opened it; reload"
"""The one sentence for a change built on an old row, or on none (every writer, 409)."""


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


def error_response(
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
    return error_response(exc.status_code, exc.code, exc.detail, exc.extra, exc.headers)


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
    return error_response(status, code, exc.detail, extra, exc.headers)


def unexpected_error_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "Internal Server Error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    AppError: app_error_handler,
    HTTPException: http_exception_handler,
    Exception: unexpected_error_handler,
}
