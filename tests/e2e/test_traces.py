"""Traces (README "### Traces"): `python -m api.ops.serve` with two workers and
`OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a real OTLP/HTTP receiver (an HTTP server here that
decodes each POST to /v1/traces as the collector would). The requests' server spans arrive
named by route template with their status, and each holds its asyncpg spans; the batch is
sent when the process stops. Without the variable the app has no OpenTelemetry in it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.auth import sign_in
from tests.support.data import make_flag, unique
from tests.support.env import ROOT
from tests.support.processes import start_app

pytestmark = pytest.mark.e2e

COLLECTOR_KEY = "x-collector-key"
COLLECTOR_SECRET = "for-the-collector-only"


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    service: str


@dataclass
class Receiver:
    url: str
    spans: list[Span] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture(name="receiver")
def fx_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = ExportTraceServiceRequest.FromString(body)
            with receiver.lock:
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                for resource_spans in request.resource_spans:
                    resource = {
                        a.key: value_of(a.value) for a in resource_spans.resource.attributes
                    }
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.spans.append(
                                Span(
                                    name=span.name,
                                    trace_id=span.trace_id.hex(),
                                    span_id=span.span_id.hex(),
                                    parent_span_id=span.parent_span_id.hex(),
                                    kind=span.kind,
                                    attributes={a.key: value_of(a.value) for a in span.attributes},
                                    service=str(resource.get("service.name")),
                                )
                            )
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


SERVER = 2  # Span.SpanKind.SPAN_KIND_SERVER
CLIENT = 3


def status_of(span: Span) -> Any:
    """The response status under either semantic-conventions name the instrumentation uses."""
    return span.attributes.get("http.response.status_code", span.attributes.get("http.status_code"))


async def test_server_and_database_spans_reach_an_otlp_receiver(
    database: str, receiver: Receiver
) -> None:
    viewer = await sign_in()
    key = await make_flag(unique("traced"))
    app = start_app(
        database,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_EXPORTER_OTLP_HEADERS": f"{COLLECTOR_KEY}={COLLECTOR_SECRET}",
            "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing sent before the stop: its flush
            "WEB_CONCURRENCY": "2",  # a provider per worker
        },
        timeout=60,
    )
    try:
        for _ in range(3):
            listed = httpx.get(f"{app.base_url}/api/v1/features", cookies=viewer.cookies)
            assert listed.status_code == 200
        one = httpx.get(f"{app.base_url}/api/v1/features/{key}", cookies=viewer.cookies)
        assert one.status_code == 200
        missing = httpx.get(f"{app.base_url}/api/v1/features/{unique('absent')}", cookies={})
        assert missing.status_code == 401
        assert httpx.get(f"{app.base_url}/health").status_code == 200
        assert httpx.get(f"{app.base_url}/health/ready").status_code == 200
        time.sleep(0.5)
        with receiver.lock:
            assert receiver.spans == [], "the batch waits for its delay or the shutdown"
    finally:
        app.stop()
    assert app.process.returncode == 0

    with receiver.lock:
        spans = list(receiver.spans)
        headers = list(receiver.headers)
    assert headers
    assert all(h.get(COLLECTOR_KEY) == COLLECTOR_SECRET for h in headers)
    assert {span.service for span in spans} == {"marketedge-api"}
    servers = [span for span in spans if span.kind == SERVER]
    names = sorted(span.name for span in servers)
    assert names == sorted(
        ["GET /api/v1/features"] * 3
        + ["GET /api/v1/features/{key}"] * 2  # the raw key never names a span
    ), names
    assert not any(key in span.name or "absent" in span.name for span in spans)
    by_status = sorted((span.attributes["http.route"], status_of(span)) for span in servers)
    assert by_status == sorted(
        [("/api/v1/features", 200)] * 3
        + [("/api/v1/features/{key}", 200), ("/api/v1/features/{key}", 401)]
    )
    by_id = {span.span_id: span for span in spans}

    def request_of(span: Span) -> Span | None:
        while span.parent_span_id and span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
        return span if span.kind == SERVER else None

    queries = [span for span in spans if span.attributes.get("db.system") == "postgresql"]
    assert queries, "asyncpg spans expected"
    listed_traces = {s.trace_id for s in servers if s.name == "GET /api/v1/features"}
    inside = [q for q in queries if (r := request_of(q)) and r.trace_id in listed_traces]
    assert inside, "the features requests' queries are in their traces"
    assert all(q.kind == CLIENT and q.trace_id == request_of(q).trace_id for q in inside)  # type: ignore[union-attr]


PROBE = """
import json, sys, asyncpg
from api.app import create_app
from api.platform.config import load_settings
settings = load_settings({
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "PUBLIC_URL": "http://127.0.0.1:8000",
    "OIDC_ISSUER": "http://issuer.test/", "OIDC_CLIENT_ID": "a", "OIDC_CLIENT_SECRET": "b",
    **json.loads(sys.argv[1]),
})
app = create_app(settings)
litestar = app
while not hasattr(litestar, "plugins"):
    litestar = litestar.app
chain, handler = [], litestar.asgi_handler
while handler is not None:
    chain.append(type(handler).__module__ + "." + type(handler).__qualname__)
    handler = getattr(handler, "app", None)
print(json.dumps({
    "plugins": [type(p).__name__ for p in litestar.plugins],
    "chain": chain,
    "modules": sorted(m for m in sys.modules if m.startswith((
        "opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation.asyncpg"
    ))),
    "asyncpg_wrapped": hasattr(asyncpg.Connection.execute, "__wrapped__"),
}))
"""


def built_app(env: dict[str, str]) -> dict[str, Any]:
    """What a fresh interpreter holds after building the app with `env` added."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(env)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_without_an_endpoint_the_app_holds_no_opentelemetry() -> None:
    """Without the variable: no plugin, no middleware, asyncpg untouched, and neither the SDK
    nor the exporter nor the asyncpg instrumentation imported. (Litestar itself imports the
    OpenTelemetry API while building any app, for its middleware-ordering workaround: a
    one-off import, not work per request.) With it, the same probe sees all of them."""
    found = built_app({})
    assert not any("OpenTelemetry" in name for name in found["plugins"]), found
    assert found["chain"]
    assert not any("opentelemetry" in link.lower() for link in found["chain"])
    assert found["modules"] == []
    assert found["asyncpg_wrapped"] is False

    traced = built_app({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    assert "OpenTelemetryPlugin" in traced["plugins"]
    assert any("RouteNamedSpans" in link for link in traced["chain"]), traced["chain"]
    assert "opentelemetry.sdk.trace" in traced["modules"]
    assert traced["asyncpg_wrapped"] is True
