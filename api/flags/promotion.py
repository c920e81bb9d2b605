"""Promoting flag configuration between environments (staging → production): a canonical
export document, and an import that applies one through `api.flags.service`.

The document (`docs/flags-export.schema.json`, `format` 1) describes behaviour only: no ids,
timestamps, versions, usage counts or user overrides; segments by key, nodes by their path
of slugs. Its encoding is canonical (sorted keys, fixed separators, items by key or in
evaluation order), so two exports of the same state are byte-identical and diff in Git.

The import is one transaction: every item goes through the same service function a REST or
admin write calls (validation, locks, audit, announce at commit), so the first refusal
rolls everything back and answers 422 naming the item. A dry run is the same import, rolled
back at its end: its diff is exactly what the real one would do. Items already as the
document says are skipped by the service itself (no audit row, no version bump), so a
second import changes nothing. Nothing is deleted: flags the document lacks are archived
only with `prune`, other rules and schedules are left alone and listed as such.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any, cast

import msgspec

from api.auth.identity import Caller
from api.flags import queries, service
from api.flags.schemas import (
    FieldChange,
    Flag,
    FlagsDocument,
    ImportResult,
    ItemChange,
    LeftAlone,
    PromotedFlag,
    PromotedSchedule,
    SegmentOut,
    TargetingRule,
)
from api.flags.service import Connection
from api.platform.db.audit import audit_noted
from api.platform.db.changes import change_transaction
from api.platform.db.sql import savepoint
from api.platform.http.errors import AppError, InvalidInput

FORMAT = 1
"""The document's format version; an import refuses any other."""
SCHEMA_PATH = "/api/v1/schemas/flags-export.json"
"""Where the JSON Schema is served (the file is docs/flags-export.schema.json)."""

MAX_DOCUMENT_BYTES = 1_048_576
"""A document's size, as MAX_REQUEST_BODY_BYTES bounds every body (1 MiB)."""
MAX_FLAGS = 1_000
"""Measured: a dry run of 1,000 flags with a rule each (407 kB) takes 7.2 s on 2 cores."""
MAX_SEGMENTS = 500
MAX_RULES_PER_FLAG = 100
MAX_SCHEDULES_PER_FLAG = 50
MAX_NODE_OVERRIDES_PER_FLAG = 500
"""Counts a document may hold; each item's own size is the service's bounds
(api/flags/bounds.py: MAX_DEFINITION_BYTES, MAX_RULE_BYTES, MAX_SEGMENT_BYTES)."""

FLAG_FIELDS = (
    "name",
    "description",
    "flag_type",
    "variants",
    "default_variant",
    "off_variant",
    "enabled",
    "rollout_percentage",
    "rollout_split",
)
RULE_FIELDS = ("position", "conditions", "segment_id", "variant", "split")
"""Compared by the diff; `segment_id` is shown as `segment` (its key)."""
SEGMENT_FIELDS = ("name", "description", "conditions")


@dataclass(frozen=True, slots=True)
class Importer:
    """Who an import's audit records name: a super-admin (their user), or a machine client
    (no user: `actor_email` is `client:<id>`)."""

    user_id: int | None
    email: str | None


def canonical_json(document: Any) -> bytes:
    """The one encoding of a document: sorted keys, fixed separators, UTF-8, a final
    newline."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode()


def _percent(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _time(value: Any) -> str:
    return str(value.astimezone(UTC).isoformat())


# ---- export --------------------------------------------------------------------------------


async def export_document(*, include_node_overrides: bool = False) -> dict[str, Any]:
    """The canonical document of every non-archived flag and the segments their rules use."""
    flags = await queries.list_flags(include_archived=False)
    by_id = {flag.id: flag for flag in flags}
    segments = {segment.id: segment for segment in await queries.list_segments()}
    rules: dict[int, list[dict[str, Any]]] = {}
    used: set[int] = set()
    for rule in await queries.all_rules():
        if rule.flag_id not in by_id:
            continue
        if rule.segment_id is not None:
            used.add(rule.segment_id)
        rules.setdefault(rule.flag_id, []).append(
            {
                "name": rule.name,
                "position": rule.position,
                "conditions": rule.conditions,
                "segment": None if rule.segment_id is None else segments[rule.segment_id].key,
                "variant": rule.variant,
                "split": rule.split,
            }
        )
    schedules: dict[int, list[dict[str, Any]]] = {}
    for schedule in await queries.pending_schedules():
        schedules.setdefault(schedule.flag_id, []).append(
            {
                "action": schedule.action.value,
                "run_at": _time(schedule.run_at),
                "rollout_percentage": None
                if schedule.rollout_percentage is None
                else _percent(schedule.rollout_percentage),
                "variant": schedule.variant,
                "note": schedule.note,
            }
        )
    overrides: dict[int, list[dict[str, Any]]] = {}
    if include_node_overrides:
        paths = await queries.node_slug_paths()
        for override in await queries.node_overrides():
            assert override.node_id is not None
            overrides.setdefault(override.flag_id, []).append(
                {
                    "node": paths[override.node_id],
                    "variant": override.variant,
                    "reason": override.reason,
                    "expires_at": None
                    if override.expires_at is None
                    else _time(override.expires_at),
                }
            )
    exported = []
    for flag in flags:  # by key
        item: dict[str, Any] = {
            "key": flag.key,
            "name": flag.name,
            "description": flag.description,
            "type": flag.flag_type,
            "variants": flag.variants,
            "default_variant": flag.default_variant,
            "off_variant": flag.off_variant,
            "enabled": flag.enabled,
            "rollout_percentage": _percent(flag.rollout_percentage),
            "rollout_split": flag.rollout_split,
            "rules": rules.get(flag.id, []),
            "schedules": sorted(
                schedules.get(flag.id, []), key=lambda s: (s["run_at"], s["action"])
            ),
        }
        if include_node_overrides:
            item["node_overrides"] = sorted(overrides.get(flag.id, []), key=lambda o: o["node"])
        exported.append(item)
    return {
        "format": FORMAT,
        "flags": exported,
        "segments": [
            {
                "key": s.key,
                "name": s.name,
                "description": s.description,
                "conditions": s.conditions,
            }
            for s in sorted((segments[i] for i in used), key=lambda s: s.key)
        ],
    }


# ---- import --------------------------------------------------------------------------------


def _refuse(detail: str, **extra: Any) -> InvalidInput:
    return InvalidInput(detail, extra={"reason": "invalid_document", **extra})


def parse_document(body: bytes) -> FlagsDocument:
    """The document, within its bounds (422 naming what is wrong, before anything is read)."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise _refuse(f"The document is over {MAX_DOCUMENT_BYTES} bytes", limit=MAX_DOCUMENT_BYTES)
    try:
        document = msgspec.json.decode(body, type=FlagsDocument)
    except msgspec.ValidationError as exc:
        raise _refuse(f"The document does not match format {FORMAT}: {exc}") from None
    except msgspec.DecodeError:
        raise _refuse("The document is not JSON") from None
    if document.format != FORMAT:
        raise _refuse(f"Unknown format {document.format}; this service reads format {FORMAT}")
    _require_count("flags", len(document.flags), MAX_FLAGS)
    _require_count("segments", len(document.segments), MAX_SEGMENTS)
    _require_unique("flag", [f.key for f in document.flags])
    _require_unique("segment", [s.key for s in document.segments])
    for flag in document.flags:
        where = f"flags[{flag.key}]"
        _require_count(f"{where}.rules", len(flag.rules), MAX_RULES_PER_FLAG)
        _require_count(f"{where}.schedules", len(flag.schedules), MAX_SCHEDULES_PER_FLAG)
        overrides = flag.node_overrides or []
        _require_count(f"{where}.node_overrides", len(overrides), MAX_NODE_OVERRIDES_PER_FLAG)
        _require_unique(f"rule of flag {flag.key!r}", [r.name for r in flag.rules])
        _require_unique(f"node override of flag {flag.key!r}", [o.node for o in overrides])
    return document


def _require_count(what: str, count: int, limit: int) -> None:
    if count > limit:
        raise _refuse(f"{what} holds {count} items; the limit is {limit}", limit=limit)


def _require_unique(what: str, keys: list[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise _refuse(f"The {what} {key!r} appears twice")
        seen.add(key)


class _DryRun(Exception):
    """Raised at the end of a dry run, so its transaction rolls back."""


class _Diff:
    def __init__(self) -> None:
        self.changes: list[ItemChange] = []
        self.left_alone: list[LeftAlone] = []

    def compare(
        self,
        kind: str,
        key: str,
        flag: str | None,
        before: msgspec.Struct | None,
        after: msgspec.Struct,
        fields: tuple[str, ...],
        action: str | None = None,
    ) -> None:
        """Record what the service did: created, changed (each field before → after), or
        nothing."""

        def shown(struct: msgspec.Struct | None, name: str) -> Any:
            return None if struct is None else msgspec.to_builtins(getattr(struct, name))

        changed = {
            name: FieldChange(shown(before, name), shown(after, name))
            for name in fields
            if before is None or getattr(before, name) != getattr(after, name)
        }
        if before is not None and not changed:
            self.left_alone.append(LeftAlone(kind, key, flag, "unchanged"))
            return
        verb = action or ("created" if before is None else "changed")
        self.changes.append(ItemChange(kind, key, flag, verb, changed))


def _named(exc: AppError, **item: Any) -> InvalidInput:
    """A service's refusal, naming the item it refused (422: nothing was written)."""
    names = " ".join(f"{k} {v!r}" for k, v in item.items() if v is not None)
    return InvalidInput(
        f"{names}: {exc.detail}",
        extra={**item, "status": exc.status_code, "error": exc.code, **(exc.extra or {})},
    )


async def import_document(
    body: bytes,
    importer: Importer,
    connection: Connection,
    *,
    dry_run: bool,
    prune: bool = False,
) -> ImportResult:
    """Apply (or, with `dry_run`, try and roll back) a document; all of it or none."""
    document = parse_document(body)
    digest = hashlib.sha256(body).hexdigest()
    diff = _Diff()
    actor = cast(Caller, importer)  # the service reads only `user_id` and `email`
    try:
        with audit_noted(import_sha256=digest):
            async with change_transaction(), savepoint():
                # The savepoint: inside another transaction (the admin's form) a dry run or
                # a refusal still undoes exactly this import's writes.
                await _apply(document, actor, connection, diff, prune=prune)
                if dry_run:
                    raise _DryRun
    except _DryRun:
        pass
    return ImportResult(
        dry_run=dry_run,
        applied=not dry_run,
        document_sha256=digest,
        changes=diff.changes,
        left_alone=diff.left_alone,
    )


async def _apply(
    document: FlagsDocument, actor: Caller, connection: Connection, diff: _Diff, *, prune: bool
) -> None:
    existing_segments = {s.key: s for s in await queries.list_segments()}
    segment_ids: dict[str, int] = {key: s.id for key, s in existing_segments.items()}
    for segment in document.segments:
        fields = {
            "name": segment.name,
            "description": segment.description,
            "conditions": segment.conditions,
        }
        before: SegmentOut | None = existing_segments.get(segment.key)
        try:
            if before is None:
                after = await service.create_segment(
                    {"key": segment.key, **fields}, actor, connection
                )
            else:
                after = await service.update_segment(before.id, fields, actor, connection)
        except AppError as exc:
            raise _named(exc, segment=segment.key) from None
        segment_ids[segment.key] = after.id
        diff.compare("segment", segment.key, None, before, after, SEGMENT_FIELDS)

    existing_flags = {f.key: f for f in await queries.list_flags(include_archived=True)}
    for promoted in document.flags:
        try:
            flag = await _apply_flag(
                promoted, existing_flags.get(promoted.key), actor, connection, diff
            )
        except AppError as exc:
            raise _named(exc, flag=promoted.key) from None
        await _apply_rules(promoted, flag, segment_ids, actor, connection, diff)
        await _apply_schedules(promoted, flag, actor, connection, diff)
        if promoted.node_overrides is not msgspec.UNSET:
            await _apply_node_overrides(promoted, flag, actor, connection, diff)

    named = {f.key for f in document.flags}
    for key, flag in sorted(existing_flags.items()):
        if key in named or flag.archived:
            continue
        if not prune:
            diff.left_alone.append(LeftAlone("flag", key, None, "not_in_document"))
            continue
        try:
            after_flag = await service.update_flag(
                flag.id, flag.version, {"archived": True}, actor, connection
            )
        except AppError as exc:
            raise _named(exc, flag=key) from None
        diff.compare("flag", key, None, flag, after_flag, ("archived",), action="archived")


async def _apply_flag(
    promoted: PromotedFlag,
    before: Flag | None,
    actor: Caller,
    connection: Connection,
    diff: _Diff,
) -> Flag:
    fields: dict[str, Any] = {
        "name": promoted.name,
        "description": promoted.description,
        "flag_type": promoted.type.value,
        "variants": promoted.variants,
        "default_variant": promoted.default_variant,
        "off_variant": promoted.off_variant,
        "enabled": promoted.enabled,
        "rollout_percentage": promoted.rollout_percentage,
        "rollout_split": promoted.rollout_split,
    }
    if before is None:
        after = await service.create_flag({"key": promoted.key, **fields}, actor, connection)
        diff.compare("flag", promoted.key, None, None, after, FLAG_FIELDS)
        return after
    if before.archived:
        fields["archived"] = False  # the document describes it live
    after = await service.update_flag(before.id, before.version, fields, actor, connection)
    diff.compare("flag", promoted.key, None, before, after, (*FLAG_FIELDS, "archived"))
    return after


async def _apply_rules(
    promoted: PromotedFlag,
    flag: Flag,
    segment_ids: Mapping[str, int],
    actor: Caller,
    connection: Connection,
    diff: _Diff,
) -> None:
    existing = {rule.name: rule for rule in await queries.list_rules(flag.id)}
    segment_keys = {segment_id: key for key, segment_id in segment_ids.items()}
    for rule in promoted.rules:
        try:
            if rule.segment is not None and rule.segment not in segment_ids:
                raise InvalidInput(
                    f"No segment named {rule.segment!r} here or in the document",
                    extra={"field": "segment"},
                )
            fields = {
                "position": rule.position,
                "conditions": rule.conditions,
                "segment_id": None if rule.segment is None else segment_ids[rule.segment],
                "variant": rule.variant,
                "split": rule.split,
            }
            before: TargetingRule | None = existing.get(rule.name)
            if before is None:
                after = await service.create_rule(
                    flag.id, {"name": rule.name, **fields}, actor, connection
                )
            else:
                after = await service.update_rule(flag.id, before.id, fields, actor, connection)
        except AppError as exc:
            raise _named(exc, flag=promoted.key, rule=rule.name) from None
        diff.compare("rule", rule.name, promoted.key, before, after, RULE_FIELDS)
        _segment_by_key(diff, segment_keys)
    named = {rule.name for rule in promoted.rules}
    for name in sorted(set(existing) - named):
        diff.left_alone.append(LeftAlone("rule", name, promoted.key, "not_in_document"))


def _segment_by_key(diff: _Diff, segment_keys: Mapping[int, str]) -> None:
    """A rule's change names its segment by key, as the document does: ids differ between
    databases, and a diff must read the same wherever it is computed."""
    if not diff.changes or diff.changes[-1].kind != "rule":
        return
    fields = diff.changes[-1].fields
    if "segment_id" in fields:
        change = fields.pop("segment_id")
        fields["segment"] = FieldChange(
            segment_keys.get(change.before, change.before),
            segment_keys.get(change.after, change.after),
        )


def _schedule_key(
    action: str, run_at: Any, rollout: Any, variant: Any, note: str
) -> tuple[Any, ...]:
    return (
        action,
        run_at.astimezone(UTC),
        None if rollout is None else Decimal(str(rollout)).quantize(Decimal("0.01")),
        variant,
        note,
    )


async def _apply_schedules(
    promoted: PromotedFlag, flag: Flag, actor: Caller, connection: Connection, diff: _Diff
) -> None:
    pending = {
        _schedule_key(s.action.value, s.run_at, s.rollout_percentage, s.variant, s.note)
        for s in await queries.list_schedules(flag.id)
        if s.status.value == "pending"
    }
    for schedule in promoted.schedules:
        label = f"{schedule.action.value}@{_time(schedule.run_at)}"
        key = _schedule_key(
            schedule.action.value,
            schedule.run_at,
            schedule.rollout_percentage,
            schedule.variant,
            schedule.note,
        )
        if key in pending:
            diff.left_alone.append(LeftAlone("schedule", label, promoted.key, "unchanged"))
            continue
        try:
            await service.create_schedule(flag.id, _schedule_fields(schedule), actor, connection)
        except AppError as exc:
            raise _named(exc, flag=promoted.key, schedule=label) from None
        diff.changes.append(
            ItemChange(
                "schedule",
                label,
                promoted.key,
                "created",
                {
                    name: FieldChange(None, value)
                    for name, value in msgspec.to_builtins(schedule).items()
                },
            )
        )


def _schedule_fields(schedule: PromotedSchedule) -> dict[str, Any]:
    return {
        "action": schedule.action.value,
        "run_at": schedule.run_at,
        "rollout_percentage": schedule.rollout_percentage,
        "variant": schedule.variant,
        "note": schedule.note,
    }


async def _apply_node_overrides(
    promoted: PromotedFlag, flag: Flag, actor: Caller, connection: Connection, diff: _Diff
) -> None:
    paths = {path: node_id for node_id, path in (await queries.node_slug_paths()).items()}
    existing = {o.node_id: o for o in await queries.list_overrides(flag.id) if o.node_id}
    for wanted in promoted.node_overrides or []:
        try:
            node_id = paths.get(wanted.node)
            if node_id is None:
                raise InvalidInput(f"No node at {wanted.node!r}", extra={"field": "node"})
            fields = {
                "variant": wanted.variant,
                "reason": wanted.reason,
                "expires_at": wanted.expires_at,
            }
            before = existing.get(node_id)
            if before is None:
                after = await service.create_override(
                    flag.id, {**fields, "node_id": node_id}, actor, connection
                )
            else:
                after = await service.update_override(before.id, fields, actor, connection)
        except AppError as exc:
            raise _named(exc, flag=promoted.key, node_override=wanted.node) from None
        diff.compare(
            "node_override",
            wanted.node,
            promoted.key,
            before,
            after,
            ("variant", "reason", "expires_at"),
        )
