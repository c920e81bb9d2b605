"""`/`: one small server-rendered page, the newcomer's proof that the whole chain works.

Anonymous: a "Log in" button. Signed in: who you are, where you belong (each assignment by
its full path) with your effective permissions, your flags with their reasons in words,
"Log out", and /admin/ for super-admins. The flag table follows changes live: the page
listens to the session's OFREP event stream (api/flags/streams.py) and, on an event,
re-reads itself and swaps in the new table, so the reasons stay worded in one place.
Rendered by Jinja from `api/web/templates/`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, get
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig

from api.auth.identification import identify
from api.auth.identity import Caller
from api.flags.evaluate import Evaluation, Reason
from api.flags.store import evaluate_all, flag_cache
from api.flags.streams import STREAM_PATH
from api.hierarchy.me import MyAssignment, describe_me

TEMPLATES = Path(__file__).parent / "templates"

template_config: TemplateConfig[JinjaTemplateEngine] = TemplateConfig(
    instance=JinjaTemplateEngine(
        engine_instance=Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    )
)


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    path: str
    level: str
    role: str
    is_primary: bool
    permissions: str


@dataclass(frozen=True, slots=True)
class FlagRow:
    key: str
    value: str
    """As a person reads it: "on"/"off" for a boolean flag, else the value as JSON."""
    style: str
    """"on", "off" or "value": how the cell is coloured."""
    reason: str


def shown_value(value: Any) -> str:
    """A boolean as on/off; anything else as JSON (so "7" and 7 differ), cut at 200."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 200 else text[:199] + "…"


def state(evaluation: Evaluation) -> str:
    """What the user got, in a word: on/off for a boolean flag, else the variant's name."""
    if isinstance(evaluation.value, bool) or evaluation.variant is None:
        return "on" if evaluation.value is True else "off"
    return evaluation.variant


def node_paths(assignments: Sequence[MyAssignment]) -> dict[int, str]:
    """Every node on the caller's assignment paths → its full name, "Acme Retail / Paris"."""
    paths: dict[int, str] = {}
    for assignment in assignments:
        for depth, node_id in enumerate(assignment.path):
            paths[node_id] = " / ".join(assignment.path_names[: depth + 1])
    return paths


def percent(value: Decimal) -> str:
    """50.00 → "50", 12.50 → "12.5": the percentage as a person would write it."""
    return format(value.normalize(), "f")


def explain(
    evaluation: Evaluation,
    rollout: Decimal | None,
    paths: Mapping[int, str],
    off_variant: str = "off",
) -> str:
    """Why a flag has its value for the caller, in words (docs/FLAGS.md's precedence)."""
    word = state(evaluation)
    metadata = evaluation.metadata
    match evaluation.reason:
        case Reason.DISABLED:
            return f"{word}: switched off for everyone"
        case Reason.TARGETING_MATCH if metadata.get("override") == "user":
            return f"{word}: override for you"
        case Reason.TARGETING_MATCH if "rule" in metadata:
            segment = f" (segment {metadata['segment']})" if "segment" in metadata else ""
            return f"{word}: rule {metadata['rule']}{segment}"
        case Reason.TARGETING_MATCH if evaluation.override_node_id is not None:
            where = paths.get(evaluation.override_node_id, "your organisation")
            return f"{word}: override for {where}"
        case Reason.SPLIT if rollout is not None:
            inside = "you are in" if evaluation.variant != off_variant else "you are not in"
            served = "" if isinstance(evaluation.value, bool) else f", served {word}"
            return f"{percent(rollout)} % rollout: {inside}{served}"
        case Reason.DEFAULT if rollout is not None:
            return f"{word}: {percent(rollout)} % rollout"
        case Reason.ERROR:
            return f"off: could not be evaluated ({evaluation.error_code or 'error'})"
    return f"{word}: {evaluation.reason.value.lower().replace('_', ' ')}"


async def signed_in_context(caller: Caller) -> dict[str, Any]:
    """What the signed-in page shows: assignments by path (from /me), then flags."""
    me = await describe_me(caller)
    paths = node_paths(me.assignments)
    assignments = [
        AssignmentRow(
            path=" / ".join(a.path_names),
            level=a.level,
            role=a.role,
            is_primary=a.is_primary,
            permissions=", ".join(a.effective_permissions),
        )
        for a in me.assignments
    ]
    evaluations = await evaluate_all(caller.user_id)
    definitions = await flag_cache.flags()
    flags = []
    for evaluation in evaluations:
        definition = definitions.get(evaluation.key)
        rollout = definition.rollout_percentage if definition else None
        off = definition.off_variant if definition else "off"
        value = evaluation.value
        style = ("on" if value else "off") if isinstance(value, bool) else "value"
        reason = explain(evaluation, rollout, paths, off)
        flags.append(FlagRow(evaluation.key, shown_value(value), style, reason))
    return {
        "who": caller.email or str(caller.user_id),
        "name": me.name,
        "is_super_admin": caller.is_super_admin,
        "assignments": assignments,
        "flags": flags,
        "stream_url": STREAM_PATH + caller.stream_key if caller.stream_key else None,
    }


@get("/", include_in_schema=False, media_type="text/html")
async def home(request: Request[Any, Any, Any]) -> Template:
    caller = await identify(request)  # not `caller`: anonymous visitors get a page, not a 401
    if caller is None or caller.via != "session":
        return Template(template_name="home_anonymous.html", media_type="text/html")
    return Template(
        template_name="home.html",
        context=await signed_in_context(caller),
        media_type="text/html",
        headers={"Cache-Control": "no-store"},
    )
