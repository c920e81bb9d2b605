"""Liveness and readiness are separate and honest; every response has a request id (F7)."""

from __future__ import annotations

import httpx


async def test_liveness_touches_no_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_database_answers_and_schema_is_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "pending_migrations": []}


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/health/ready", "/no/such/route"):
        response = await client.get(path)
        assert len(response.headers["x-request-id"]) >= 8


async def test_a_well_formed_incoming_request_id_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "trace-abc-12345"})
    assert response.headers["x-request-id"] == "trace-abc-12345"


async def test_a_malformed_incoming_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"


async def test_unknown_route_is_a_json_404_naming_the_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "not_found"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_the_openapi_document_renders(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/v1/auth/session/check", "/api/v1/features", "/ofrep/v1/evaluate/flags"):
        assert path in paths
