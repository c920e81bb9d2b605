"""`/`: one small server-rendered page, the newcomer's proof that the whole chain works.

Anonymous: a "Log in" button. Signed in: who you are, your organizations and effective
permissions, your flags with their reasons, "Log out", and /admin/ for super-admins.
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request, Response, get

from api.auth.identity import Caller, identify
from api.flags.store import evaluate_all
from api.hierarchy.me import describe_me

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:860px;margin:2rem auto;
  padding:0 1rem;color:#1d2330}
h1{font-size:1.5rem}
h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e3e6ec}
code{background:#f3f4f7;padding:0 .2rem}
.button{display:inline-block;background:#2855d9;color:#fff;border:0;border-radius:6px;
  padding:.5rem 1rem;font-size:15px;cursor:pointer;text-decoration:none}
.muted{color:#6b7280}
.on{color:#0a7d32}
.off{color:#b42318}
"""

LOGOUT_SCRIPT = """
document.getElementById('logout').addEventListener('click', async () => {
  const check = await fetch('/api/v1/auth/session/check', {credentials: 'same-origin'});
  const {csrf_token} = await check.json();
  const out = await fetch('/api/v1/auth/logout', {method: 'POST', credentials: 'same-origin',
    headers: {'X-CSRF-Token': csrf_token}});
  const body = await out.json();
  window.location.href = body.end_session_url || '/';
});
"""


def _page(title: str, body: str, script: str = "") -> str:
    tail = f"<script>{script}</script>" if script else ""
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{STYLE}</style>"
        f"</head><body>{body}{tail}</body></html>"
    )


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]], empty: str) -> str:
    if not rows:
        return f"<p class=muted>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


async def signed_in_sections(caller: Caller) -> str:
    """Organizations with assignments and effective permissions (from /me), then flags."""
    me = await describe_me(caller)
    organization = {org.id: org.name for org in me.organizations}
    assignments = _table(
        ("organization", "node", "level", "role", "primary", "effective permissions"),
        [
            (
                escape(organization[a.organization_id]),
                escape(a.node_name),
                escape(a.level),
                f"<code>{escape(a.role)}</code>",
                "yes" if a.is_primary else "",
                escape(", ".join(a.effective_permissions)),
            )
            for a in me.assignments
        ],
        "No organization yet: an administrator has to assign you.",
    )
    flags = _table(
        ("flag", "value", "reason"),
        [
            (
                f"<code>{escape(e.key)}</code>",
                f"<span class={'on' if e.value else 'off'}>{'on' if e.value else 'off'}</span>",
                escape(e.reason.value),
            )
            for e in await evaluate_all(caller.user_id)
        ],
        "No feature flags yet.",
    )
    return f"<h2>Your organizations</h2>{assignments}<h2>Your features</h2>{flags}"


@get("/", include_in_schema=False, media_type="text/html")
async def home(request: Request[Any, Any, Any]) -> Response[str]:
    caller = await identify(request)
    if caller is None or caller.via != "session":
        body = (
            "<h1>MarketEdge Platform API</h1><p>You are not signed in.</p>"
            "<p><a class=button id=login href='/api/v1/auth/login?next=/'>Log in</a></p>"
            "<p class=muted>API documentation: <a href='/schema'>/schema</a></p>"
        )
        return Response(_page("MarketEdge", body), media_type="text/html")
    admin = "<a href='/admin/'>Open the admin</a> · " if caller.is_super_admin else ""
    body = (
        f"<h1>Signed in as <span id=who>{escape(caller.email or str(caller.user_id))}</span></h1>"
        f"<p>{admin}<button class=button id=logout>Log out</button></p>"
        f"{await signed_in_sections(caller)}"
    )
    return Response(
        _page("MarketEdge", body, LOGOUT_SCRIPT),
        media_type="text/html",
        headers={"Cache-Control": "no-store"},
    )
