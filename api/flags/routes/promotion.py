"""Promotion between environments over HTTP (docs/FLAGS.md, "Promoting flags"): export the
canonical document, import one (dry run first). A super-admin may do both; a machine client
on SERVICE_CLIENT_IDS may export with scope `flags:read` and import with `flags:write`;
anyone else gets 403. The work is `api.flags.promotion`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery

from api.auth.deps import UserOrService, provide_user_or_service
from api.flags import promotion
from api.flags.promotion import Importer
from api.flags.schemas import ImportResult
from api.platform.db.readiness import require_schema_and_strict_body
from api.platform.http.errors import Forbidden

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "docs" / "flags-export.schema.json"
READ_SCOPE, WRITE_SCOPE = "flags:read", "flags:write"


def _promoter(caller: UserOrService, scope: str) -> Importer:
    """The importer an audit names, if the caller may use `scope` (else 403)."""
    if caller.user is not None:
        if not caller.user.is_super_admin:
            raise Forbidden("Super-admins only")
        return Importer(caller.user.user_id, caller.user.email)
    assert caller.service is not None
    if scope not in caller.service.scopes:
        raise Forbidden(f"The client lacks the scope {scope}", extra={"scope": scope})
    return Importer(None, f"client:{caller.service.client_id}")


@get("/export", operation_id="exportFlags")
async def export_flags(
    caller: NamedDependency[UserOrService],
    include: FromQuery[Literal["node_overrides"] | None] = None,
) -> Response[bytes]:
    """Every non-archived flag, its rules, schedules and segments, canonically encoded;
    `?include=node_overrides` adds node overrides by node path."""
    _promoter(caller, READ_SCOPE)
    document = await promotion.export_document(include_node_overrides=include is not None)
    return Response(promotion.canonical_json(document), media_type="application/json")


@post("/import", operation_id="importFlags", status_code=200)
async def import_flags(
    request: Request[Any, Any, Any],
    caller: NamedDependency[UserOrService],
    dry_run: FromQuery[bool] = False,
    prune: FromQuery[bool] = False,
) -> ImportResult:
    """Apply a document atomically (422 naming the refused item), or with `dry_run` say
    what it would change and write nothing; `prune` archives flags it does not name."""
    importer = _promoter(caller, WRITE_SCOPE)
    body = await request.body()
    return await promotion.import_document(body, importer, request, dry_run=dry_run, prune=prune)


@get(promotion.SCHEMA_PATH, operation_id="flagsExportSchema", media_type="application/schema+json")
async def export_schema() -> Response[Any]:
    """The JSON Schema of the document (docs/flags-export.schema.json), at a stable URL: the
    file's bytes, a JSON object (so OpenAPI says no more than "any", not "string")."""
    return Response(SCHEMA_FILE.read_bytes(), media_type="application/schema+json")


flags_promotion_router = Router(
    path="/api/v1/admin/flags",
    before_request=require_schema_and_strict_body,
    dependencies={"caller": Provide(provide_user_or_service)},
    tags=["admin"],
    route_handlers=[export_flags, import_flags],
)
