"""Sections of the `/` page that come from the permission and flag domains."""

from __future__ import annotations

from html import escape

from api.auth.identity import Caller
from api.flags.store import evaluate_all
from api.hierarchy.me import describe_me


async def extra_sections(caller: Caller) -> str:
    me = await describe_me(caller)
    permission_rows = "".join(
        f"<tr><td>{escape(a.node_name)}</td><td><code>{escape(a.role)}</code></td>"
        f"<td>{escape(', '.join(a.effective_permissions))}</td></tr>"
        for a in me.assignments
    )
    permissions = (
        "<h2>Your effective permissions</h2><table><thead><tr><th>node</th><th>role</th>"
        f"<th>permissions</th></tr></thead><tbody>{permission_rows}</tbody></table>"
        if me.assignments
        else ""
    )
    flag_rows = "".join(
        f"<tr><td><code>{escape(e.key)}</code></td>"
        f"<td class={'on' if e.value else 'off'}>{'on' if e.value else 'off'}</td>"
        f"<td>{escape(e.reason.value)}</td></tr>"
        for e in await evaluate_all(caller.user_id)
    )
    flags = (
        "<h2>Your features</h2><table id=flags><thead><tr><th>flag</th><th>value</th>"
        f"<th>reason</th></tr></thead><tbody>{flag_rows}</tbody></table>"
    )
    return permissions + flags
