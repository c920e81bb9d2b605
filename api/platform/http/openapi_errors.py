"""Document the error answers every operation can give, in the OpenAPI schema itself.

Errors are produced in one place (`errors`) with one shape; this adds that shape, for
the statuses our guards and handlers produce, to every operation that does not already
document a more specific body — so clients and the schema-based fuzzer know what to expect.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Schema

ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["status_code", "error", "detail"],
    properties={
        "status_code": Schema(type=OpenAPIType.INTEGER),
        "error": Schema(type=OpenAPIType.STRING, description="a stable machine-readable code"),
        "detail": Schema(type=OpenAPIType.STRING),
        "extra": Schema(type=OpenAPIType.OBJECT),
        "request_id": Schema(type=OpenAPIType.STRING),
    },
)

ERRORS = {
    "400": "Malformed request",
    "401": "Not signed in",
    "403": "Signed in but not allowed here (or CSRF token/origin missing)",
    "404": "Not found, or outside the caller's reach",
    "405": "Method not allowed",
    "409": "Conflicts with existing data or a newer version",
    "415": "Unsupported media type",
    "422": "Invalid input; `extra.field` names the field",
    "429": "Rate limited; see Retry-After",
    "503": "Database unavailable, schema not ready, or identity provider unreachable",
}


def document_error_responses(app: Litestar) -> None:
    schema = app.openapi_schema
    for path_item in (schema.paths or {}).values():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(path_item, method, None)
            if operation is None:
                continue
            responses = operation.responses if operation.responses is not None else {}
            for status, description in ERRORS.items():
                responses.setdefault(
                    status,
                    OpenAPIResponse(
                        description=description,
                        content={"application/json": OpenAPIMediaType(schema=ERROR_SCHEMA)},
                    ),
                )
            operation.responses = responses
