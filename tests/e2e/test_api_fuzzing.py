"""Property-based fuzzing of every operation in /schema/openapi.json against a real server,
anonymous and signed in (with the CSRF token): no 5xx, and every answer is one the schema
documents, in status, content type and body."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from oidc_provider_mock import run_server_in_thread
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.auth import SignedIn, sign_in
from tests.support.data import assign, make_flag, make_tree
from tests.support.processes import AppProcess, start_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 40
REQUESTS: dict[str, int] = {"anonymous": 0, "signed_in": 0}


@pytest.fixture(name="server", scope="module")
def fx_server(database: str) -> Iterator[AppProcess]:
    """The real web process, with a real OpenID Provider so login answers are genuine."""
    with run_server_in_thread() as provider:
        env = {
            "AUTH_RATE_LIMIT_PER_MINUTE": "1000000",
            "OIDC_ISSUER": f"http://localhost:{provider.server_port}",
            "OIDC_AUDIENCE": "marketedge-api",
        }
        app = start_app(database, env=env)
        yield app
        app.stop()


@pytest.fixture(name="member", scope="module")
def fx_member() -> SignedIn:
    async def prepare() -> SignedIn:
        tree = await make_tree()
        who = await sign_in(super_admin=True)
        await assign(who.user_id, tree.loc_a, "org_admin", primary=True)
        await make_flag("fuzzed-flag", rollout="50")
        return who

    return asyncio.get_event_loop().run_until_complete(prepare())


def operations(server: AppProcess) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(f"{server.base_url}/schema/openapi.json")


def fuzz(server: AppProcess, headers: dict[str, str], who: str) -> None:
    schema = operations(server)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            REQUESTS[who] += 1
            case.call_and_validate(
                base_url=server.base_url, headers=headers, checks=CHECKS, timeout=10
            )

        try:
            run()
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_fuzz_every_operation_anonymously(server: AppProcess) -> None:
    fuzz(server, {}, "anonymous")


def test_fuzz_every_operation_signed_in(server: AppProcess, member: SignedIn) -> None:
    headers = {
        "Cookie": f"me_session={member.token}",
        "X-CSRF-Token": member.csrf_token,
        "Origin": server.base_url,
    }
    fuzz(server, headers, "signed_in")


def test_at_least_2000_generated_requests_were_made() -> None:
    print(f"\nschemathesis generated requests: {REQUESTS}")
    assert sum(REQUESTS.values()) >= 2000, REQUESTS
