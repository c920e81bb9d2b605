"""Authorization is declared on every route, deny by default, and checked before bodies.

Walks every route of the app (the Piccolo Admin mount and the docs included) and every
operation of the admin API (Litestar's `/api/v1/admin…` and Piccolo Admin's `/admin/api…`),
calling each as anonymous, as a plain user and as an org_admin with a malformed body.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, Router, get
from litestar.types import ASGIApp

from api.admin_ui.mount import admin_app
from api.auth.guards import PUBLIC, Access, access_of, super_admin, undeclared_routes
from tests.support.auth import SignedIn, sign_in
from tests.support.data import assign, make_tree

ORIGIN = "http://127.0.0.1:8000"
MALFORMED = b'{"not json'
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def litestar_of(app: ASGIApp) -> Litestar:
    while not isinstance(app, Litestar):
        app = app.app  # type: ignore[attr-defined]
    return app


def concrete(path: str) -> str:
    """A path template with every parameter filled in (`{key:str}` → `x`, ints → 1)."""
    path = re.sub(r"\{[^}:]+:int\}", "1", path)
    return re.sub(r"\{[^}]+\}", "x", path)


def app_operations(app: ASGIApp) -> Iterator[tuple[str, str, Access | None]]:
    for route in litestar_of(app).routes:
        for handler in getattr(route, "route_handlers", None) or [route.route_handler]:  # type: ignore[attr-defined]
            for method in sorted(getattr(handler, "http_methods", None) or {"ASGI"}):
                yield method, route.path, access_of(handler)


def _routes_of(app: Any) -> list[Any]:
    for _ in range(10):
        if getattr(app, "routes", None) is not None:
            return list(app.routes)
        app = getattr(app, "app", None) or getattr(app, "router", None)
    return []


def admin_operations() -> Iterator[tuple[str, str]]:
    """Every method and path of Piccolo Admin's API, as mounted at /admin."""

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, str]]:
        for route in routes:
            path = prefix + getattr(route, "path", "")
            if type(route).__name__ == "Mount":
                yield from walk(_routes_of(route.app) if route.app else route.routes, path)
            else:
                for method in sorted(getattr(route, "methods", None) or {"GET"}):
                    if method != "HEAD":
                        yield method, path

    for method, path in walk(_routes_of(admin_app()), "/admin"):
        if path.startswith("/admin/api/"):
            yield method, path
    for method in UNSAFE:  # what the routes above do not list still reaches the mount
        yield method, "/admin/api/tables/feature_flags/1/"


def test_every_route_declares_who_may_call_it(app: ASGIApp) -> None:
    operations = list(app_operations(app))
    assert len(operations) > 80
    assert undeclared_routes(litestar_of(app).routes) == []
    declared = {(m, p): a for m, p, a in operations}
    assert declared["ASGI", "/admin"] is Access.super_admin  # the Piccolo Admin mount
    assert declared["GET", "/schema/openapi.json"] is Access.public  # the docs
    assert declared["GET", "/health"] is Access.public
    assert declared["PATCH", "/api/v1/users/{user_id:int}"] is Access.super_admin
    assert declared["GET", "/api/v1/features"] is Access.signed_in
    admin = [(m, p, a) for m, p, a in operations if p.startswith("/api/v1/admin")]
    assert len(admin) > 30
    # Promotion also lets in machine clients by scope; the handler refuses everyone else.
    promotion = {"/api/v1/admin/flags/export", "/api/v1/admin/flags/import"}
    assert all(a is Access.super_admin for _, p, a in admin if p not in promotion)
    assert all(a is Access.user_or_service for _, p, a in admin if p in promotion)


def test_a_route_without_declared_access_is_found() -> None:
    @get("/forgotten", sync_to_thread=False)
    def forgotten() -> None:
        return None

    @get("/declared", sync_to_thread=False, opt=PUBLIC)
    def declared() -> None:
        return None

    app = Litestar(
        [declared, Router("/admins", guards=[super_admin], route_handlers=[forgotten])],
        openapi_config=None,
    )
    assert undeclared_routes(app.routes) == []
    app = Litestar([declared, forgotten], openapi_config=None)
    assert undeclared_routes(app.routes) == ["GET /forgotten"]


@pytest.fixture(name="people")
async def fx_people() -> dict[str, SignedIn | None]:
    tree = await make_tree()
    org_admin = await sign_in()
    await assign(org_admin.user_id, tree.org, "org_admin", primary=True)
    return {"anonymous": None, "user": await sign_in(), "org_admin": org_admin}


def _request_args(person: SignedIn | None, method: str) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if person is not None and method in UNSAFE:
        headers |= person.headers(ORIGIN)  # CSRF passes: what refuses is the access rule
        headers["X-CSRFToken"] = person.csrf_token
    args: dict[str, Any] = {"headers": headers}
    if person is not None:
        args["cookies"] = person.cookies
    if method in UNSAFE:
        args["content"] = MALFORMED
    return args


async def test_every_super_admin_operation_refuses_others_before_reading_the_body(
    app: ASGIApp, client: httpx.AsyncClient, people: dict[str, SignedIn | None]
) -> None:
    operations = [
        (m, concrete(p))
        for m, p, a in app_operations(app)
        if (p.startswith("/api/v1/admin") or a is Access.super_admin)
        and m not in ("OPTIONS", "ASGI")
    ]
    operations += list(admin_operations())
    assert len(operations) > 100
    wrong: list[str] = []
    for who, person in people.items():
        expected = 401 if person is None else 403
        for method, path in operations:
            answer = await client.request(method, path, **_request_args(person, method))
            status = answer.status_code
            if person is None and status == 302 and method == "GET":
                continue  # an admin page: sent through the login
            if status != expected:
                wrong.append(f"{who} {method} {path}: {status} {answer.text[:80]}")
    assert wrong == []


async def test_every_signed_in_route_refuses_anonymous_callers_with_401(
    app: ASGIApp, client: httpx.AsyncClient
) -> None:
    wrong: list[str] = []
    for method, path, access in app_operations(app):
        if access in (None, Access.public) or method in ("OPTIONS", "ASGI", "HEAD"):
            continue
        answer = await client.request(method, concrete(path), **_request_args(None, method))
        if answer.status_code != 401:
            wrong.append(f"{method} {path}: {answer.status_code}")
    assert wrong == []


async def test_unsafe_methods_with_the_session_cookie_still_need_csrf(
    client: httpx.AsyncClient,
) -> None:
    admin = await sign_in(super_admin=True)
    answer = await client.post(
        "/api/v1/admin/feature-flags", content=MALFORMED, cookies=admin.cookies
    )
    assert answer.status_code == 403
    assert answer.json()["extra"]["reason"] == "csrf_token"
    passed = await client.post(
        "/api/v1/admin/feature-flags",
        content=MALFORMED,
        cookies=admin.cookies,
        headers={**admin.headers(ORIGIN), "Content-Type": "application/json"},
    )
    assert passed.status_code == 400  # a super-admin reaches the body, and is told about it
