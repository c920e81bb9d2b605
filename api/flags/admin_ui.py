"""The flags domain in Piccolo Admin: its tables, their write rules and its three forms.

Every admin write to a flag table goes through `api.flags.service`, the write path of the
management API: the admin's hooks (api/admin_ui/write_hooks.py) hand it what changed, so the
same rule gives the same answer, with the same sentence, through either writer. Flags and
scheduled changes are never deleted here (flags are archived; a change is cancelled).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import pydantic
from piccolo_admin.endpoints import FormConfig, TableConfig
from piccolo_api.crud.endpoints import OrderBy
from starlette.requests import Request

from api.admin_ui.write_hooks import (
    AdminWriter,
    Values,
    WriteRules,
    current_writer,
    table_config,
)
from api.flags import promotion, queries, service
from api.flags.promotion import MAX_DOCUMENT_BYTES, Importer
from api.flags.queries import stale_flags
from api.flags.schemas import ImportResult
from api.flags.store import evaluate_all
from api.platform.config import settings_of
from api.platform.http.errors import AppError, Conflict, InvalidInput
from api.platform.http.limits import nesting_exceeds
from tables.flags import (
    FeatureFlag,
    FeatureFlagOverride,
    FeatureFlagRule,
    FeatureFlagSchedule,
    FeatureFlagUsage,
    Segment,
)


def _utc(moment: Any) -> Any:
    """The forms send times without a zone: they are UTC."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _flag_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("flag_id must name an existing flag", extra={"field": "flag_id"})
    return value


def _no_empty_variant(values: Values) -> Values:
    """An empty variant box means "no variant"."""
    return {**values, "variant": None} if values.get("variant") == "" else values


@dataclass(frozen=True)
class FlagWrites:
    async def create(self, values: Values, writer: AdminWriter) -> Any:
        return (await service.create_flag(values, writer.caller, writer.connection)).id

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        assert version is not None, "flags keep optimistic concurrency"
        await service.update_flag(int(row_id), version, changes, writer.caller, writer.connection)

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        raise Conflict("Flags are archived, never deleted", extra={"field": "archived"})


@dataclass(frozen=True)
class OverrideWrites:
    async def create(self, values: Values, writer: AdminWriter) -> Any:
        fields = {
            **values,
            "reason": values.get("reason") or "",
            "expires_at": _utc(values.get("expires_at")),
        }
        flag_id = _flag_id(fields.pop("flag_id", None))
        override = await service.create_override(flag_id, fields, writer.caller, writer.connection)
        return override.id

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        if "expires_at" in changes:
            changes = {**changes, "expires_at": _utc(changes["expires_at"])}
        await service.update_override(int(row_id), changes, writer.caller, writer.connection)

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        await service.delete_override(None, int(row_id), writer.caller, writer.connection)


@dataclass(frozen=True)
class RuleWrites:
    async def create(self, values: Values, writer: AdminWriter) -> Any:
        fields = _no_empty_variant(values)
        flag_id = _flag_id(fields.pop("flag_id", None))
        rule = await service.create_rule(flag_id, fields, writer.caller, writer.connection)
        return rule.id

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        await service.update_rule(
            None, int(row_id), _no_empty_variant(changes), writer.caller, writer.connection
        )

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        await service.delete_rule(None, int(row_id), writer.caller, writer.connection)


@dataclass(frozen=True)
class SegmentWrites:
    async def create(self, values: Values, writer: AdminWriter) -> Any:
        fields = {**values, "description": values.get("description") or ""}
        return (await service.create_segment(fields, writer.caller, writer.connection)).id

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        await service.update_segment(int(row_id), changes, writer.caller, writer.connection)

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        await service.delete_segment(int(row_id), writer.caller, writer.connection)


@dataclass(frozen=True)
class ScheduleWrites:
    async def create(self, values: Values, writer: AdminWriter) -> Any:
        fields = {
            **values,
            "run_at": _utc(values.get("run_at")),
            "variant": values.get("variant") or None,
            "note": values.get("note") or "",
        }
        flag_id = _flag_id(fields.pop("flag_id", None))
        schedule = await service.create_schedule(flag_id, fields, writer.caller, writer.connection)
        return schedule.id

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        await service.change_schedule(None, int(row_id), changes, writer.caller, writer.connection)

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        raise Conflict("A scheduled change is cancelled, never deleted", extra={"field": "status"})


FLAG_RULES = WriteRules(
    FeatureFlag,
    editable=frozenset(
        {
            "key",
            "name",
            "description",
            "enabled",
            "rollout_percentage",
            "archived",
            "flag_type",
            "variants",
            "default_variant",
            "off_variant",
            "rollout_split",
        }
    ),
    optimistic_version=True,
    service=FlagWrites(),
)
FLAG_OVERRIDE_RULES = WriteRules(
    FeatureFlagOverride,
    editable=frozenset({"flag_id", "user_id", "node_id", "variant", "reason", "expires_at"}),
    updatable=frozenset({"user_id", "node_id", "variant", "reason", "expires_at"}),
    service=OverrideWrites(),
)
TARGETING_RULE_RULES = WriteRules(
    FeatureFlagRule,
    editable=frozenset(
        {"flag_id", "position", "name", "segment_id", "conditions", "variant", "split"}
    ),
    updatable=frozenset({"position", "name", "segment_id", "conditions", "variant", "split"}),
    optimistic_version=True,
    service=RuleWrites(),
)
SEGMENT_RULES = WriteRules(
    Segment,
    editable=frozenset({"key", "name", "description", "conditions"}),
    optimistic_version=True,
    service=SegmentWrites(),
)
SCHEDULE_RULES = WriteRules(
    FeatureFlagSchedule,
    editable=frozenset({"flag_id", "action", "rollout_percentage", "variant", "run_at", "note"}),
    updatable=frozenset({"status"}),  # pending → cancelled, and nothing else
    service=ScheduleWrites(),
)


def flag_table_configs() -> list[TableConfig]:
    """The flag tables, in the admin's menu order."""
    return [
        table_config(
            FeatureFlag,
            FLAG_RULES,
            delete=False,
            visible_columns=[
                FeatureFlag.key,
                FeatureFlag.name,
                FeatureFlag.enabled,
                FeatureFlag.flag_type,
                FeatureFlag.default_variant,
                FeatureFlag.rollout_percentage,
                FeatureFlag.archived,
                FeatureFlag.version,
                FeatureFlag.updated_by_id,
                FeatureFlag.updated_at,
            ],
            visible_filters=[FeatureFlag.key, FeatureFlag.enabled, FeatureFlag.archived],
            menu_group="Feature flags",
            link_column=FeatureFlag.key,
            order_by=[OrderBy(FeatureFlag.updated_at, ascending=False)],
        ),
        table_config(
            FeatureFlagOverride,
            FLAG_OVERRIDE_RULES,
            visible_columns=[
                FeatureFlagOverride.id,
                FeatureFlagOverride.flag_id,
                FeatureFlagOverride.user_id,
                FeatureFlagOverride.node_id,
                FeatureFlagOverride.variant,
                FeatureFlagOverride.reason,
                FeatureFlagOverride.expires_at,
                FeatureFlagOverride.created_by_id,
            ],
            visible_filters=[
                FeatureFlagOverride.flag_id,
                FeatureFlagOverride.user_id,
                FeatureFlagOverride.node_id,
            ],
            menu_group="Feature flags",
            order_by=[OrderBy(FeatureFlagOverride.id, ascending=False)],
        ),
        table_config(
            FeatureFlagRule,
            TARGETING_RULE_RULES,
            # No `id`: the list draws the pk only as its link column, else it renders blank.
            visible_columns=[
                FeatureFlagRule.name,
                FeatureFlagRule.flag_id,
                FeatureFlagRule.position,
                FeatureFlagRule.segment_id,
                FeatureFlagRule.conditions,
                FeatureFlagRule.variant,
                FeatureFlagRule.split,
            ],
            visible_filters=[
                FeatureFlagRule.flag_id,
                FeatureFlagRule.name,
                FeatureFlagRule.segment_id,
            ],
            menu_group="Feature flags",
            link_column=FeatureFlagRule.name,
            order_by=[OrderBy(FeatureFlagRule.flag_id), OrderBy(FeatureFlagRule.position)],
        ),
        table_config(
            Segment,
            SEGMENT_RULES,
            visible_columns=[
                Segment.key,
                Segment.name,
                Segment.conditions,
                Segment.created_by_id,
                Segment.updated_at,
            ],
            visible_filters=[Segment.key, Segment.name],
            menu_group="Feature flags",
            link_column=Segment.key,
            order_by=[OrderBy(Segment.key)],
        ),
        table_config(
            FeatureFlagSchedule,
            SCHEDULE_RULES,
            delete=False,
            visible_columns=[
                FeatureFlagSchedule.id,
                FeatureFlagSchedule.flag_id,
                FeatureFlagSchedule.action,
                FeatureFlagSchedule.rollout_percentage,
                FeatureFlagSchedule.variant,
                FeatureFlagSchedule.run_at,
                FeatureFlagSchedule.status,
                FeatureFlagSchedule.note,
                FeatureFlagSchedule.outcome,
                FeatureFlagSchedule.created_by_id,
            ],
            visible_filters=[
                FeatureFlagSchedule.flag_id,
                FeatureFlagSchedule.status,
                FeatureFlagSchedule.action,
            ],
            menu_group="Feature flags",
            order_by=[OrderBy(FeatureFlagSchedule.run_at, ascending=False)],
        ),
        table_config(
            FeatureFlagUsage,
            None,
            visible_columns=[
                FeatureFlagUsage.flag_id,
                FeatureFlagUsage.hour,
                FeatureFlagUsage.variant,
                FeatureFlagUsage.evaluations,
                FeatureFlagUsage.last_evaluated_at,
            ],
            visible_filters=[FeatureFlagUsage.flag_id, FeatureFlagUsage.variant],
            menu_group="Feature flags",
            order_by=[OrderBy(FeatureFlagUsage.hour, ascending=False)],
        ),
    ]


# ---- forms ---------------------------------------------------------------------------------


class WhatUserSees(pydantic.BaseModel):
    email: str = pydantic.Field(
        min_length=3, max_length=320, description="The person's e-mail address"
    )


async def what_user_sees(_: Request, data: WhatUserSees) -> str:
    """Every flag's value and reason for one user, exactly as the API evaluates it.

    The admin shows a form's answer as text; admin.css keeps its columns aligned."""
    email = data.email.strip().lower()
    user_id = await queries.user_id_by_email(email)
    if user_id is None:
        raise ValueError(f"No user has the e-mail {email}.")
    results = await evaluate_all(user_id)
    if not results:
        return f"{email} sees no feature flags."
    rows = [
        (result.key, result.variant or "-", json.dumps(result.value), result.reason.value)
        for result in results
    ]
    return f"{email} sees {len(results)} flags:\n" + text_table(
        ("flag", "variant", "value", "reason"), rows
    )


def text_table(headings: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """Columns aligned with spaces, a rule under the headings (admin.css shows it as is)."""
    widths = [max(len(cell) for cell in column) for column in zip(headings, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    rule = tuple("-" * width for width in widths)
    return "\n".join(line(cells).rstrip() for cells in (headings, rule, *rows))


WHAT_USER_SEES = FormConfig(
    name="What a user sees",
    pydantic_model=WhatUserSees,
    endpoint=what_user_sees,
    description="Every feature flag's value and reason for one user, as the API answers them.",
)


class StaleFlags(pydantic.BaseModel):
    days: int = pydantic.Field(
        default=30, ge=1, le=3650, description="Not evaluated, or rollout unchanged, this long"
    )


async def list_stale_flags(_: Request, data: StaleFlags) -> str:
    """The stale-flag candidates, as the admin API lists them."""
    stale = await stale_flags(data.days)
    if not stale:
        return f"No stale flags after {data.days} days."
    rows = [
        (
            flag.key,
            ", ".join(flag.reasons),
            flag.last_evaluated_at.strftime("%Y-%m-%d %H:%M")
            if flag.last_evaluated_at
            else "never",
            f"{flag.rollout_percentage} %",
            flag.rollout_changed_at.strftime("%Y-%m-%d"),
        )
        for flag in stale
    ]
    headings = ("flag", "why", "last evaluated", "rollout", "rollout since")
    return f"{len(stale)} stale flags after {data.days} days:\n" + text_table(headings, rows)


STALE_FLAGS = FormConfig(
    name="Stale flags",
    pydantic_model=StaleFlags,
    endpoint=list_stale_flags,
    description=(
        "Flags not evaluated for N days (never evaluated counts from creation), and flags"
        " whose rollout has stayed at 0 % or 100 % for N days."
    ),
)


class ImportFlags(pydantic.BaseModel):
    """Piccolo Admin 1.14 draws a form's `str` as a one-line input (its forms pass no
    `widget`, so no text area): a pasted document arrives without its line breaks, which JSON
    never needs between tokens."""

    document: str = pydantic.Field(
        min_length=1,
        max_length=MAX_DOCUMENT_BYTES,
        description="The export document (GET /api/v1/admin/flags/export), pasted whole",
    )
    prune: bool = pydantic.Field(
        default=False, description="Archive the flags the document does not name (never delete)"
    )
    apply: bool = pydantic.Field(
        default=False, description="Apply (not a dry run): needs the dry run's confirmation code"
    )
    confirmation: str = pydantic.Field(
        default="",
        max_length=64,
        description="To apply: the confirmation code the dry run of this document showed",
    )


def confirmation_code(result: ImportResult, *, prune: bool) -> str:
    """What a dry run promises: this document, this prune choice, these changes. An apply
    whose own changes hash differently (the document was edited, or the database moved
    since the dry run) is not what the person saw, and is rolled back."""
    promised = {
        "document_sha256": result.document_sha256,
        "prune": prune,
        "changes": msgspec.to_builtins(result.changes),
    }
    return hashlib.sha256(promotion.canonical_json(promised)).hexdigest()[:16]


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def import_report(result: ImportResult, code: str) -> str:
    """The diff as a person reads it: each change with its fields before → after, then
    what is left alone, by reason."""
    if result.dry_run:
        head = f"Dry run of document sha256 {result.document_sha256}: nothing was written."
    else:
        head = f"Applied document sha256 {result.document_sha256} (audited as you, with this hash)."
    verb = "would change" if result.dry_run else "changed"
    lines = [
        head,
        "",
        f"{_items(len(result.changes))} {verb}:"
        if result.changes
        else ("Nothing would change." if result.dry_run else "Nothing changed."),
    ]
    for change in result.changes:
        owner = f" of flag {change.flag}" if change.flag else ""
        lines.append(f"  {change.kind} {change.key}{owner}: {change.action}")
        for name, field in change.fields.items():
            lines.append(f"      {name}: {_shown(field.before)} -> {_shown(field.after)}")
    reasons = {"unchanged": "unchanged", "not_in_document": "not in the document, kept"}
    for reason, label in reasons.items():
        items = [item for item in result.left_alone if item.reason == reason]
        if items:
            lines += ["", f"{_items(len(items))} left alone ({label}):"]
            lines += [
                f"  {item.kind} {item.key}" + (f" of flag {item.flag}" if item.flag else "")
                for item in items
            ]
    if result.dry_run:
        lines += [
            "",
            f"Confirmation code: {code}",
            "To apply exactly this: keep the document and the Prune choice, set Apply to True"
            " and type the confirmation code.",
        ]
    return "\n".join(lines)


def _pasted(text: str, max_depth: int) -> bytes:
    """The document as the REST import would receive its file: canonically encoded, so its
    hash is the export's own whatever the paste did to white space (`sha256sum` of an
    exported file gives the audit's `import_sha256`). Bounded first as every request body
    is (size, then nesting, which the body's own check cannot see inside a string)."""
    raw = text.encode()
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"Nothing was written. The document is over {MAX_DOCUMENT_BYTES} bytes")
    if nesting_exceeds(raw, max_depth):
        raise ValueError(f"Nothing was written. The document nests deeper than {max_depth}")
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw  # the import's own sentence names it
    return promotion.canonical_json(decoded)


async def import_flags(_: Request, data: ImportFlags) -> str:
    """The REST import's dry run and apply (`api.flags.promotion.import_document`), inside
    the admin mount's transaction: a refusal (the service's sentence, naming the item and
    its rule) or a confirmation that does not match rolls every write back."""
    writer = current_writer()
    importer = Importer(writer.caller.user_id, writer.caller.email)
    if data.apply and not data.confirmation.strip():
        raise ValueError(
            "To apply, first submit a dry run (Apply False) and type the confirmation code it"
            " shows."
        )
    try:
        result = await promotion.import_document(
            _pasted(data.document, settings_of(writer.connection).max_json_depth),
            importer,
            writer.connection,
            dry_run=not data.apply,
            prune=data.prune,
        )
    except AppError as refusal:
        raise ValueError(f"Nothing was written. {refusal.detail}") from None
    code = confirmation_code(result, prune=data.prune)
    if data.apply and data.confirmation.strip().lower() != code:
        # A ValueError answers 422, on which the mount rolls the whole import back.
        raise ValueError(
            f"Nothing was written: the confirmation code {data.confirmation.strip()!r} is"
            " not this document's dry run (the document, the prune choice or the flags"
            " changed since). Submit a dry run again and check its diff."
        )
    return import_report(result, code)


IMPORT_FLAGS = FormConfig(
    name="Import flags",
    pydantic_model=ImportFlags,
    endpoint=import_flags,
    description=(
        "Paste an export document (from another environment's GET /api/v1/admin/flags/export)."
        " Submitting shows what the import would change and writes nothing; to apply that, set"
        " Apply to True and type the dry run's confirmation code. All or nothing, audited as"
        " you."
    ),
)
