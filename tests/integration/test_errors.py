"""Every failure is a clear JSON answer with a request id; no stack trace reaches a client."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from litestar import get

from api.app import create_app
from api.platform.config import get_settings
from api.platform.logging import JSONFormatter, request_id_var
from tests.support.http import SessionClient


@get("/probe/crash", sync_to_thread=False)
def crash() -> None:
    raise RuntimeError("secret internals /etc/passwd")


@get("/probe/missing-table", sync_to_thread=False)
def missing_table() -> None:
    raise asyncpg.UndefinedTableError('relation "user_hierarchy_assignments" does not exist')


@get("/probe/db-down", sync_to_thread=False)
def db_down() -> None:
    raise ConnectionRefusedError("connection refused")


@get("/probe/duplicate", sync_to_thread=False)
def duplicate() -> None:
    raise asyncpg.UniqueViolationError("duplicate key value violates unique constraint")


@pytest.fixture(name="probe_client")
async def fx_probe_client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(get_settings(), extra_db_routes=[crash, missing_table, db_down, duplicate])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/probe/crash", 500, "internal_error"),
        ("/probe/missing-table", 503, "schema_not_ready"),
        ("/probe/db-down", 503, "database_unavailable"),
        ("/probe/duplicate", 409, "conflict"),
    ],
)
async def test_failures_become_json_without_internals(
    probe_client: httpx.AsyncClient, path: str, status: int, code: str
) -> None:
    response = await probe_client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    text = response.text
    for leak in ("Traceback", "secret internals", "/etc/passwd", "relation", 'File "'):
        assert leak not in text


async def test_503_answers_tell_clients_when_to_retry(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/probe/db-down")
    assert response.headers["retry-after"] == "1"


async def test_malformed_json_body_is_a_4xx(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/session/check",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500


def test_json_log_lines_carry_the_request_id() -> None:
    token = request_id_var.set("req-1234567890")
    try:
        record = logging.LogRecord(
            "api.test", logging.INFO, __file__, 1, "hello %s", ("world",), None
        )
        record.fields = {"status": 200}
        line = json.loads(JSONFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "hello world"
    assert line["request_id"] == "req-1234567890"
    assert line["status"] == 200
    assert line["level"] == "info"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (
            asyncpg.AmbiguousParameterError("could not determine data type of parameter $3"),
            500,
            "internal_error",
        ),
        (asyncpg.PostgresSyntaxError('syntax error at or near "SELEC"'), 500, "internal_error"),
        (asyncpg.UndefinedColumnError('column "x" does not exist'), 503, "schema_not_ready"),
        (
            asyncpg.CannotConnectNowError("the database system is starting up"),
            503,
            "database_unavailable",
        ),
    ],
)
def test_a_broken_statement_is_a_bug_not_an_outage(
    error: Exception, status: int, code: str
) -> None:
    from api.platform.db.readiness import database_error_handler

    response = database_error_handler(None, error)  # type: ignore[arg-type]
    assert (response.status_code, response.content["error"]) == (status, code)
