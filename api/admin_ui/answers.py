"""The admin's answers in people's words, and only the bodies its endpoints can read.

piccolo_api reports a refused write as `422 {"db_error": "<Postgres message>"}`, which the
admin shows as "Database error: duplicate key value violates unique constraint ...". Each
constraint of ours is named, so the message is replaced by a sentence about the form. Its
JSON endpoints parse any body as JSON and answer 500 on anything else, so other media
types are refused here with 415.
"""

from __future__ import annotations

import json
import re
from typing import Any

from litestar.types import (
    ASGIApp,
    HTTPDisconnectEvent,
    HTTPReceiveMessage,
    HTTPRequestEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

SENTENCES = {
    "feature_flags_key_key": "Another flag already has this key.",
    "feature_flags_key_format": "The key must be a lower-case slug such as new-dashboard.",
    "feature_flags_rollout_range": "The rollout must be within 0 and 100.",
    "feature_flags_type_valid": "Choose one of the flag types offered.",
    "feature_flags_variants_object": "The variants must be a JSON object of names and values.",
    "feature_flags_default_variant_known": "The default variant must be one of the variants.",
    "feature_flags_off_variant_known": "The off variant must be one of the variants.",
    "segments_key_key": "Another segment already has this key.",
    "segments_key_format": "The key must be a lower-case slug such as beta-customers.",
    "segments_conditions_list": "The conditions must be a JSON list.",
    "flag_rules_name_unique": "This flag already has a rule with this name.",
    "flag_rules_variant_or_split": "Give a rule either a variant or a split, not both.",
    "flag_rules_conditions_list": "The conditions must be a JSON list.",
    "flag_schedules_action_valid": "Choose one of the actions offered.",
    "flag_schedules_status_valid": "Choose one of the statuses offered.",
    "flag_schedules_argument": (
        "set_rollout takes a rollout percentage, set_default_variant a variant, and the"
        " others neither."
    ),
    "flag_schedules_rollout_range": "The rollout must be within 0 and 100.",
    "flag_usage_one_row": "Usage is counted once per flag, hour and variant.",
    "flag_usage_count_positive": "Usage counts are never negative.",
    "flag_overrides_user_unique": "This person already has an override for this flag.",
    "flag_overrides_node_unique": "This node already has an override for this flag.",
    "flag_overrides_one_target": "Choose either a user or a node, not both and not neither.",
    "assignments_user_node_unique": "This person already has a role at this node.",
    "assignments_one_primary_per_user": "This person already has a primary assignment.",
    "assignments_role_valid": "Choose one of the roles offered.",
    "permission_overrides_unique": (
        "This person already has an override of this permission at this node."
    ),
    "permission_overrides_permission_valid": "Choose one of the permissions offered.",
    "hierarchy_slug_unique_among_siblings": "Another node under the same parent has this slug.",
    "hierarchy_slug_format": "The slug must be lower-case letters, digits and single dashes.",
    "hierarchy_level_valid": "Choose one of the levels offered.",
    "hierarchy_level_depth": (
        "Organizations have no parent, locations sit under an organization and departments"
        " under a location."
    ),
    "hierarchy_no_cycles": "A node cannot move under one of its own descendants.",
    "hierarchy_domains_only_on_organizations": "Only organizations claim e-mail domains.",
    "users_email_key": "Another person already has this e-mail address.",
}
IN_USE = "This row is still used by {table}: change or remove those first."
QUOTED = re.compile(r'"([a-z0-9_]+)"')


def sentence_for(database_message: str) -> str:
    """The sentence for a Postgres constraint message, naming our constraint if known."""
    names = QUOTED.findall(database_message)
    for name in names:
        if name in SENTENCES:
            return SENTENCES[name]
    if "violates foreign key constraint" in database_message and len(names) >= 3:
        if database_message.startswith(("update or delete", "delete")):
            return IN_USE.format(table=names[-1].replace("_", " "))
        return "The chosen row does not exist any more: pick it again."
    if "cannot move under its own descendant" in database_message:
        return SENTENCES["hierarchy_no_cycles"]
    return "The change conflicts with the data rules; nothing was saved."


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


class AdminAnswers:
    """Wraps the Piccolo Admin ASGI app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        unsafe = scope.get("method") in ("POST", "PATCH", "PUT", "DELETE")
        if scope.get("method") in ("POST", "PATCH", "PUT"):
            if not _is_json(scope):
                body = b'{"detail":"Send the form as JSON (Content-Type: application/json)"}'
                await _respond(send, 415, [(b"content-type", b"application/json")], body)
                return
            # Its endpoints unpack the body as keyword arguments: only an object will do.
            # (Its size and depth were bounded before this by api/platform/http/limits.py.)
            received = await _read_body(receive)
            parsed = _parsed(received)
            if not isinstance(parsed, dict):
                body = b'{"detail":"The body must be a JSON object"}'
                await _respond(send, 400, [(b"content-type", b"application/json")], body)
                return
            deep = next((k for k, v in parsed.items() if _nests_too_deeply(v)), None)
            if deep is not None:  # the forms send JSON columns as text, parsed recursively
                label = str(deep).replace("_", " ").title()
                detail = [
                    {"loc": ["body", label], "msg": "nests too deeply", "type": "value_error"}
                ]
                body = json.dumps({"detail": detail}).encode()
                await _respond(send, 422, [(b"content-type", b"application/json")], body)
                return
            receive = _replay(received)
        if not unsafe:
            await self.app(scope, receive, send)
            return
        start: list[HTTPResponseStartEvent] = []
        chunks: list[bytes] = []

        async def reword(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 422:
                start.append(message)
                return
            if start and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                headers = [(k, v) for k, v in start[0]["headers"] if k != b"content-length"]
                start.clear()
                await _respond(send, 422, headers, _reworded(b"".join(chunks)))
                return
            await send(message)

        await self.app(scope, receive, reword)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> HTTPReceiveMessage:
        nonlocal sent
        if not sent:
            sent = True
            request: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
            return request
        disconnect: HTTPDisconnectEvent = {"type": "http.disconnect"}
        return disconnect

    return receive


MAX_TEXT_JSON_DEPTH = 64
"""Deeper than any column of ours holds (settings: 20), far below Python's recursion limit."""


def _nests_too_deeply(value: Any) -> bool:
    """Whether a form's text value, read as JSON, nests deeper than MAX_TEXT_JSON_DEPTH:
    counted in one pass without parsing, since parsing it is what would recurse."""
    if not isinstance(value, str) or value.lstrip()[:1] not in ("[", "{"):
        return False
    depth, in_string, escaped = 0, False, False
    for char in value:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_TEXT_JSON_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _reworded(body: bytes) -> bytes:
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if not isinstance(answer, dict) or not isinstance(answer.get("db_error"), str):
        return body
    # The admin shows a `custom_form_error` as it is, without a field name.
    return json.dumps({"custom_form_error": sentence_for(answer["db_error"])}).encode()
