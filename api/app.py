"""create_app(): routes, guards, error handlers and lifespan, assembled in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.exceptions import ImproperlyConfiguredException
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, ControllerRouterHandler

from api.admin_ui.mount import admin_mount
from api.audit_log.routes import list_audit_logs
from api.auth.deps import CALLER
from api.auth.guards import (
    PUBLIC,
    Access,
    declared,
    signed_in,
    super_admin,
    undeclared_routes,
    user_or_service,
)
from api.auth.rate_limit import auth_limiter
from api.auth.routes import auth_config, callback, login, logout, session_check
from api.flags.routes.features import get_feature, list_features
from api.flags.routes.management import flags_management_router
from api.flags.routes.ofrep import evaluate_flag_ofrep, evaluate_flags_ofrep, ofrep_event_stream
from api.flags.routes.promotion import export_schema, flags_promotion_router
from api.flags.scheduler import flag_scheduler
from api.flags.streams import event_streams
from api.flags.usage import usage_flusher
from api.hierarchy.routes import hierarchy_router, me, users_router
from api.platform.config import SETTINGS_STATE, Settings, get_settings, settings_of
from api.platform.db.changes import change_listener
from api.platform.db.readiness import DATABASE_ERROR_HANDLERS, require_schema
from api.platform.http.errors import EXCEPTION_HANDLERS
from api.platform.http.limits import RequestLimitsMiddleware
from api.platform.http.openapi_errors import document_error_responses
from api.platform.http.openapi_ui import swagger_assets, swagger_ui_plugin
from api.platform.http.request_context import RequestContextMiddleware
from api.platform.http.security_headers import SecurityHeadersMiddleware
from api.platform.logging import access_log_flusher, configure_logging
from api.platform.metrics import metrics_endpoint, metrics_sampler
from api.platform.runtime import frozen_startup_heap
from api.platform.tracing import tracing_lifespans, tracing_plugins
from api.web.health import liveness, readiness
from api.web.pages import home, template_config

logger = logging.getLogger("api.app")


@asynccontextmanager
async def database_pool(app: Litestar) -> AsyncIterator[None]:
    """Open the pool lazily (min_size=0) so the app starts even while the database is down."""
    from api.platform.db.sql import engine, use_transaction_pooler

    db = engine()
    if settings_of(app).through_pooler:
        use_transaction_pooler(db.config)
    await db.start_connection_pool(min_size=0, max_size=settings_of(app).db_pool_size)
    try:
        yield
    finally:
        await db.close_connection_pool()


def cors_config(settings: Settings) -> CORSConfig | None:
    """Credentialed CORS for the configured front ends only (the API's own origin needs none)."""
    if not settings.frontend_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.frontend_origins),
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "Content-Type",
            "X-CSRF-Token",
            "X-Request-ID",
            "Authorization",
            "If-Match",
            "If-None-Match",
        ],
        expose_headers=["X-Request-ID", "ETag", "Retry-After"],
        max_age=600,
    )


def create_app(
    settings: Settings | None = None,
    extra_db_routes: Sequence[ControllerRouterHandler] = (),
) -> ASGIApp:
    """Build the ASGI application. `extra_db_routes` lets tests mount probes behind the gate."""
    settings = settings or get_settings()
    configure_logging(
        json_lines=settings.environment != "development",
        level=logging.getLevelNamesMapping()[settings.log_level],
    )
    auth_limiter.limit = settings.auth_rate_limit_per_minute
    # Who may call what, declared here where routes are grouped; a route that declares
    # nothing stops the app from being built (api/auth/guards.py).
    db_backed = Router(
        path="/",
        before_request=require_schema,
        dependencies=CALLER,
        route_handlers=[
            Router(path="/", opt=PUBLIC, route_handlers=[home, login, callback, session_check]),
            # The stream URL carries its own credential (a session's stream key).
            Router(path="/", opt=PUBLIC, route_handlers=[ofrep_event_stream]),
            # Hot routes: they apply the rule as a call (`authenticated()`), not a guard.
            Router(path="/", opt=declared(Access.signed_in), route_handlers=[me, list_features]),
            Router(
                path="/",
                guards=[signed_in],
                route_handlers=[logout, hierarchy_router, users_router, get_feature],
            ),
            Router(path="/", guards=[user_or_service], route_handlers=[evaluate_flag_ofrep]),
            # Super-admins, or machine clients by scope (checked by the handlers).
            Router(path="/", guards=[user_or_service], route_handlers=[flags_promotion_router]),
            Router(path="/", opt=PUBLIC, route_handlers=[export_schema]),
            # Hot: the rule as a call (`provide_user_or_service`), before the body is read.
            Router(
                path="/",
                opt=declared(Access.user_or_service),
                route_handlers=[evaluate_flags_ofrep],
            ),
            Router(
                path="/",
                guards=[super_admin],
                route_handlers=[flags_management_router, list_audit_logs],
            ),
            Router(path="/", opt=PUBLIC, route_handlers=list(extra_db_routes)),  # tests' probes
        ],
    )
    litestar_app = Litestar(
        route_handlers=[
            Router(
                path="/",
                opt=PUBLIC,
                route_handlers=[liveness, readiness, auth_config, swagger_assets()],
            ),
            # /metrics checks METRICS_TOKEN itself (404 in production without one).
            Router(path="/", opt=PUBLIC, route_handlers=[metrics_endpoint]),
            # The mount checks super-admin itself: anonymous pages are sent through the login.
            Router(path="/", opt=declared(Access.super_admin), route_handlers=[admin_mount]),
            db_backed,
        ],
        exception_handlers={**EXCEPTION_HANDLERS, **DATABASE_ERROR_HANDLERS},
        lifespan=[
            access_log_flusher,
            database_pool,
            change_listener,
            event_streams,  # after the listener: shutdown closes streams before it stops
            flag_scheduler,
            usage_flusher,  # after the pool: its last flush at shutdown still has it
            metrics_sampler,
            frozen_startup_heap,
            *tracing_lifespans(settings),  # last: its flush at shutdown runs first
        ],
        plugins=tracing_plugins(settings),  # none without OTEL_EXPORTER_OTLP_ENDPOINT
        openapi_config=OpenAPIConfig(
            title="MarketEdge Platform API",
            version="1.0.0",
            openapi_router=Router(
                path="/schema", opt=PUBLIC, include_in_schema=False, route_handlers=[]
            ),
            render_plugins=[swagger_ui_plugin()],
        ),
        template_config=template_config,
        cors_config=cors_config(settings),
        debug=False,
        logging_config=None,
        state=State({SETTINGS_STATE: settings}),
    )
    if missing := undeclared_routes(litestar_app.routes):
        raise ImproperlyConfiguredException(f"Routes without declared access: {missing}")
    document_error_responses(litestar_app)
    guarded = SecurityHeadersMiddleware(RequestLimitsMiddleware(litestar_app, settings), settings)
    return RequestContextMiddleware(guarded)
