"""The official OpenFeature OFREP providers, Python and JavaScript, against a real server.

A database of its own holds the demo data (`python -m api.ops.demo`, as `make run` loads it);
Uma signs in through the real development provider (oidc-provider-mock) over HTTP, and
both SDKs resolve the demo's typed flags with her session: values of the flag's type, the
variant's name, the reason and the rule that matched. Asking for the wrong type is the
SDK's TYPE_MISMATCH, with the caller's default.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from tests.support.databases import fresh_database
from tests.support.deployment import load_demo
from tests.support.env import ROOT
from tests.support.processes import AppProcess, run_release, start_app

pytestmark = pytest.mark.e2e
COLOURS = {"blue": "#1f6feb", "green": "#2da44e", "orange": "#fb8500"}
VIVID = {"palette": "vivid", "gridLines": False, "accent": "#fb8500"}


@dataclass(frozen=True)
class Demo:
    app: AppProcess
    headers: dict[str, str]
    """What Uma's browser sends with an unsafe request: her session cookie, CSRF and Origin."""


def sign_in_over_http(base_url: str, issuer: str, sub: str) -> dict[str, str]:
    with httpx.Client(base_url=base_url, timeout=10) as browser:
        start = browser.get("/api/v1/auth/login", params={"next": "/"})
        assert start.status_code == 302, start.text
        with httpx.Client(timeout=10) as at_provider:
            authorized = at_provider.post(start.headers["location"], data={"sub": sub})
        assert authorized.status_code == 302, authorized.text
        done = browser.get(authorized.headers["location"])
        assert done.status_code == 302, done.text
        check = browser.get("/api/v1/auth/session/check").json()
        cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    return {"Cookie": cookie, "X-CSRF-Token": check["csrf_token"], "Origin": base_url}


@pytest.fixture(name="demo", scope="module")
def fx_demo() -> Iterator[Demo]:
    url = fresh_database("marketedge_openfeature_demo")
    assert run_release(url).returncode == 0
    with run_server_in_thread() as server:
        issuer = f"http://localhost:{server.server_port}"
        load_demo(url, issuer, {"uma": "uma@acme.example"})
        app = start_app(url, env={"OIDC_ISSUER": issuer})
        try:
            yield Demo(app, sign_in_over_http(app.base_url, issuer, "uma"))
        finally:
            app.stop()


@pytest.fixture(name="client")
def fx_client(demo: Demo) -> Iterator[Any]:
    from openfeature.contrib.provider.ofrep import OFREPProvider

    api.set_provider(OFREPProvider(demo.app.base_url, headers_factory=lambda: demo.headers))
    yield api.get_client()
    api.shutdown()


def test_python_sdk_resolves_the_demos_typed_flags(client: Any) -> None:
    colour = client.get_string_details("checkout-button-color", "none")
    assert colour.variant in COLOURS
    assert colour.value == COLOURS[colour.variant]
    assert colour.reason == Reason.SPLIT

    widgets = client.get_integer_details("max-dashboard-widgets", 0)
    assert (widgets.value, widgets.variant, widgets.reason) == (24, "extended", "TARGETING_MATCH")
    assert widgets.flag_metadata == {"rule": "enterprise-plan"}
    assert type(widgets.value) is int

    theme = client.get_object_details("chart-theme", {})
    assert (theme.value, theme.variant, theme.reason) == (VIVID, "vivid", "TARGETING_MATCH")
    assert theme.flag_metadata == {"rule": "acme-staff-try-vivid", "segment": "acme-staff"}

    rate = client.get_float_details("report-sample-rate", -1.0)
    assert (type(rate.value), rate.reason) == (float, Reason.SPLIT)
    assert rate.value in (0.25, 1.0)


def test_python_sdk_sends_context_attributes_that_rules_read(client: Any) -> None:
    in_france = client.get_boolean_details(
        "regional-pricing", False, EvaluationContext(attributes={"country": "FR"})
    )
    assert (in_france.value, in_france.variant, in_france.reason) == (True, "on", "TARGETING_MATCH")
    assert in_france.flag_metadata == {"rule": "eu-countries"}
    elsewhere = client.get_boolean_details(
        "regional-pricing", True, EvaluationContext(attributes={"country": "US"})
    )
    assert (elsewhere.value, elsewhere.variant, elsewhere.reason) == (False, "off", "DEFAULT")


def test_python_sdk_reports_a_wrong_type_and_a_missing_flag(client: Any) -> None:
    as_text = client.get_string_details("max-dashboard-widgets", "fallback")
    assert (as_text.value, as_text.error_code) == ("fallback", ErrorCode.TYPE_MISMATCH)
    as_bool = client.get_boolean_details("checkout-button-color", False)
    assert (as_bool.value, as_bool.error_code) == (False, ErrorCode.TYPE_MISMATCH)
    missing = client.get_integer_details("no-such-flag", 7)
    assert (missing.value, missing.error_code) == (7, ErrorCode.FLAG_NOT_FOUND)


def resolve_in_node(demo: Demo, evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "Node.js is installed by the test command"
    request = {"baseUrl": demo.app.base_url, "headers": demo.headers, "evaluations": evaluations}
    done = subprocess.run(
        [node, "resolve.mjs"],
        cwd=ROOT / "tests" / "js",
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_javascript_sdk_resolves_the_demos_typed_flags(demo: Demo) -> None:
    colour, widgets, theme, rate, pricing, wrong, missing = resolve_in_node(
        demo,
        [
            {"key": "checkout-button-color", "type": "string", "default": "none"},
            {"key": "max-dashboard-widgets", "type": "number", "default": 0},
            {"key": "chart-theme", "type": "object", "default": {}},
            {"key": "report-sample-rate", "type": "number", "default": -1},
            {"key": "regional-pricing", "type": "boolean", "default": False,
             "context": {"country": "DE"}},
            {"key": "max-dashboard-widgets", "type": "string", "default": "fallback"},
            {"key": "no-such-flag", "type": "number", "default": 7},
        ],
    )  # fmt: skip
    assert colour["variant"] in COLOURS
    assert (colour["value"], colour["reason"]) == (COLOURS[colour["variant"]], "SPLIT")
    assert (widgets["value"], widgets["variant"], widgets["reason"]) == (
        24,
        "extended",
        "TARGETING_MATCH",
    )
    assert widgets["flagMetadata"] == {"rule": "enterprise-plan"}
    assert (theme["value"], theme["variant"]) == (VIVID, "vivid")
    assert theme["flagMetadata"] == {"rule": "acme-staff-try-vivid", "segment": "acme-staff"}
    assert rate["value"] == {"sampled": 0.25, "full": 1.0}[rate["variant"]]
    assert (pricing["value"], pricing["variant"], pricing["flagMetadata"]) == (
        True,
        "on",
        {"rule": "eu-countries"},
    )
    assert (wrong["value"], wrong["errorCode"]) == ("fallback", "TYPE_MISMATCH")
    assert (missing["value"], missing["errorCode"]) == (7, "FLAG_NOT_FOUND")
