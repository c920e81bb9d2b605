"""OpenTelemetry traces (README "### Traces"), on only when `OTEL_EXPORTER_OTLP_ENDPOINT` is
set: an HTTP server span per routed request, named by its route template
(`GET /api/v1/features/{key}`, never the raw path), and a span per asyncpg query inside it,
exported over OTLP/HTTP in batches.

Unset, `create_app` adds no plugin and no middleware, and nothing imports OpenTelemetry: the
hot path pays nothing. That is why every OpenTelemetry import here sits inside a function.

The provider is made once per process, when that process builds its app: uvicorn's workers
are spawned interpreters that each call `create_app`, so each has its own provider and batch
thread (a provider made before a fork would export from a thread the child does not have).
The SDK reads its own variables: `OTEL_SERVICE_NAME` (default here `marketedge-api`),
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
`OTEL_BSP_*` (batching) and `OTEL_TRACES_SAMPLER`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.platform.config import Settings

if TYPE_CHECKING:
    from litestar.plugins import PluginProtocol
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("api.platform.tracing")

DEFAULT_SERVICE_NAME = "marketedge-api"
UNTRACED_PATHS = ["^/health", "^/metrics$"]
"""Probes and scrapes: every few seconds from the platform, they would bury the requests."""
FLUSH_MILLIS = 5_000
"""At most this long at shutdown to send the spans still batched."""
TRACES_PATH = "/v1/traces"
"""What OTLP/HTTP appends to `OTEL_EXPORTER_OTLP_ENDPOINT` for traces (the SDK's own rule)."""


def traces_url(endpoint: str) -> str:
    return endpoint.rstrip("/") + TRACES_PATH


def service_resource() -> Resource:
    """The SDK's resource from `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`, named
    `marketedge-api` where neither names the service (the SDK would say `unknown_service`)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


@cache
def tracer_provider(endpoint: str) -> TracerProvider:
    """This process's provider, made once: batching thread, exporter, and the asyncpg
    instrumentation (which patches asyncpg for the whole process, hence once)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = service_resource()
    provider = TracerProvider(resource=resource)  # shut down (flushed) at exit too
    # Headers, timeout and compression come from the OTEL_EXPORTER_OTLP_* variables.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    logger.info(
        "traces exported to %s as %s",
        traces_url(endpoint),
        resource.attributes.get(SERVICE_NAME),
        extra={"fields": {"event": "tracing_enabled", "pid": os.getpid()}},
    )
    return provider


def _request_span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The server span's first name: the method alone (OpenTelemetry's name for a request of
    unknown route), since the plugin's middleware runs before Litestar routes. It is renamed
    after the template when the response starts (`_route_naming`); a raw path never shows."""
    return str(scope.get("method", "HTTP")), {}


def _route_naming(app: ASGIApp) -> ASGIApp:
    """Wraps what the OpenTelemetry middleware calls: by the response's start Litestar has
    routed and put the template in the scope, and the server span is the current one."""
    from opentelemetry import trace

    async def named_by_route(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                fields: dict[str, Any] = scope  # type: ignore[assignment]
                if route := fields.get("path_template"):
                    span = trace.get_current_span()
                    span.update_name(f"{fields['method']} {route}")
                    span.set_attribute("http.route", route)
            await send(message)

        await app(scope, receive, send_named)

    return named_by_route


def tracing_plugins(settings: Settings) -> list[PluginProtocol]:
    """Litestar's OpenTelemetry plugin when an endpoint is configured; else nothing at all."""
    endpoint = settings.otlp_endpoint
    if endpoint is None:
        return []
    from litestar.plugins.opentelemetry import (
        OpenTelemetryConfig,
        OpenTelemetryInstrumentationMiddleware,
        OpenTelemetryPlugin,
    )

    class RouteNamedSpans(OpenTelemetryInstrumentationMiddleware):
        def __init__(self, app: ASGIApp, config: OpenTelemetryConfig) -> None:
            super().__init__(app, config)
            self.open_telemetry_middleware.app = _route_naming(app)

    provider = tracer_provider(endpoint)
    config = OpenTelemetryConfig(
        tracer_provider=provider,
        scope_span_details_extractor=_request_span_details,
        exclude=UNTRACED_PATHS,
        exclude_spans=["receive", "send"],  # one span per request, not one per ASGI message
        scopes={ScopeType.HTTP},
        middleware_class=RouteNamedSpans,
    )
    plugin = OpenTelemetryPlugin(config)
    # The plugin's `middleware` ignores `config.middleware_class` unless this is set (Litestar
    # 2.25 sets it the same way for middleware it adopts); Litestar finds the plugin by its
    # class name, so it cannot be a subclass.
    plugin._middleware = config.middleware
    return [plugin]


Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]


def tracing_lifespans(settings: Settings) -> list[Lifespan]:
    """The flush at shutdown, when traces are on."""
    endpoint = settings.otlp_endpoint
    if endpoint is None:
        return []

    @asynccontextmanager
    async def flush_spans_at_shutdown(_: Litestar) -> AsyncIterator[None]:
        """Send what the batch holds when the process stops: the last requests' spans."""
        try:
            yield
        finally:
            tracer_provider(endpoint).force_flush(timeout_millis=FLUSH_MILLIS)

    return [flush_spans_at_shutdown]
