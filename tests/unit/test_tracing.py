"""The traces' service name (README "Traces"): the SDK's own variables win, and the service
is `marketedge-api` where none names it."""

from __future__ import annotations

import pytest

from api.platform.tracing import DEFAULT_SERVICE_NAME, service_resource, traces_url


def test_service_name_defaults_and_follows_the_sdks_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert service_resource().attributes["service.name"] == DEFAULT_SERVICE_NAME == "marketedge-api"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,region=eu")
    resource = service_resource()
    assert resource.attributes["service.name"] == "from-attributes"
    assert resource.attributes["region"] == "eu"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "marketedge-staging")
    assert service_resource().attributes["service.name"] == "marketedge-staging"


def test_traces_go_to_the_sdks_traces_path() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("https://otlp.example.com/otlp/") == "https://otlp.example.com/otlp/v1/traces"
