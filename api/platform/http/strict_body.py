"""Request bodies are typed strictly: a JSON value of the wrong type is refused, never coerced.

Litestar converts handler arguments leniently (`"false"` becomes `False`, `"7"` becomes `7`),
which suits path and query strings but not JSON bodies, where `{"is_active": "false"}`
silently deactivated an organization (issue 11). Routers with JSON bodies run this hook
first: it decodes the body once more, strictly, into the handler's `data` type.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request

from api.platform.http.errors import InvalidInput

_FIELD = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")


def _field_of(error: msgspec.ValidationError) -> str | None:
    found = _FIELD.search(str(error))
    return found.group(1) if found else None


async def require_strict_body(request: Request[Any, Any, Any]) -> None:
    """422 naming the field when a body value has the wrong JSON type.

    Malformed JSON, unknown and missing fields are left to Litestar's own 400; JSON nested
    too deeply to decode is a 422 here rather than a RecursionError later.
    """
    parameter = request.route_handler.parsed_fn_signature.parameters.get("data")
    if parameter is None:
        return
    body = await request.body()
    if not body:
        return
    try:
        msgspec.json.decode(body, type=parameter.annotation, strict=True)
    except msgspec.ValidationError as exc:
        if str(exc).startswith("Expected"):
            raise InvalidInput(str(exc), extra={"field": _field_of(exc)}) from None
    except RecursionError:
        raise InvalidInput("The request body is nested too deeply", extra={"field": None}) from None
    except msgspec.DecodeError:
        return
