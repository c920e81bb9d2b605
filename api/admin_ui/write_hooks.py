"""What a super-admin may write through Piccolo Admin, checked by the API's own rules.

Configured through piccolo_api's own hooks (pre_save, pre_patch), not by patching it:
piccolo_admin has no read-only columns (piccolo-orm/piccolo_admin#138).

Piccolo Admin's forms send every field of the row back on save, timestamps cut to whole
seconds included. So each write keeps only the fields of the table's editable set whose
value really changed; a changed field outside that set is refused with a sentence, never
written. The changed values then go through the same validation as the REST API, and the
actor columns (`created_by_id`, ...) are set from the signed-in super-admin, never from the
form. Errors answer 422 in the shape the admin shows next to the form: "Field - sentence".

A table whose domain has a service (`ServiceWrites`) is written by that service, the one
write path the REST API uses too: the hook hands it what changed, and Piccolo's own write
that follows is a no-op (`AlreadyWritten` for a new row, the bare primary key for an update,
which the database's triggers ignore as changing nothing). A save that changes nothing
writes nothing. A table with a `version` keeps optimistic concurrency: a save without one,
or built on an older row, is refused.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from litestar.connection import ASGIConnection
from piccolo.columns import JSON
from piccolo.table import Table
from piccolo_api.crud.hooks import Hook, HookType
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.auth.identity import Caller
from api.flags.rules import (
    require_flag_pattern_budget,
    require_variants_unused,
    validate_flag_changes,
    validate_override,
    validate_rule,
    validate_schedule,
    validate_schedule_change,
    validate_segment,
)
from api.platform.http.errors import STALE_SAVE, AppError, InvalidInput
from tables.flags import FeatureFlag

Values = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AdminWriter:
    """The super-admin behind an admin write, and the request, for the services' audit."""

    caller: Caller
    connection: ASGIConnection[Any, Any, Any, Any]


admin_writer: ContextVar[AdminWriter | None] = ContextVar("admin_writer", default=None)
"""Set by the admin mount around each write it passes to Piccolo Admin."""


class ServiceWrites(Protocol):
    """A domain service's writes, as the admin's hooks call them: each validates, locks,
    compares the version, writes only what changed, audits and announces, like a REST call.
    Refusals are `AppError`s naming their field in `extra["field"]`."""

    async def create(self, values: Values, writer: AdminWriter) -> Any:
        """Insert the row; its primary key."""

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        """Apply `changes` (only fields whose value differs) to the row."""

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        """Delete (or refuse to delete) the row."""


class AlreadyWritten:
    """What a pre-save hook hands back when the service inserted the row itself: Piccolo
    Admin then calls `save().run()`, which must only report the new row's id."""

    def __init__(self, primary_key: str, row_id: Any) -> None:
        self._answer = [{primary_key: row_id}]

    def save(self) -> AlreadyWritten:
        return self

    async def run(self) -> list[dict[str, Any]]:
        return self._answer


def current_writer() -> AdminWriter:
    writer = admin_writer.get()
    if writer is None:  # only the mount runs the admin, and it always sets one
        raise HTTPException(status_code=403, detail="Writes go through the admin mount")
    return writer


Check = Callable[[Values, Values, Values | None], Awaitable[None] | None]
"""(changes, the row as it will be stored, the row before or None for a new one): raises
an AppError, or cleans `changes` in place."""


def field_error(table: type[Table], name: str, message: str, status: int = 422) -> HTTPException:
    """The admin renders `detail[i]` as "<loc[-1]> field - <msg>": name the field as the
    form labels it (pydantic's title of the column name)."""
    label = name.replace("_", " ").title()
    text = message.removeprefix(f"{name} ").removeprefix(f"{name}: ").strip()
    detail: Any = [{"loc": ["body", label], "msg": text, "type": "value_error"}]
    return HTTPException(status_code=status, detail=detail)


def _names(table: type[Table]) -> set[str]:
    return {column._meta.name for column in table._meta.columns}


def _json_names(table: type[Table]) -> set[str]:
    return {c._meta.name for c in table._meta.columns if isinstance(c, JSON)}  # JSONB too


def _decoded(table: type[Table], name: str, value: Any) -> Any:
    """JSON columns as values: the forms send them as text (empty text is null)."""
    if name not in _json_names(table) or not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except ValueError:
        raise field_error(table, name, "is not valid JSON") from None
    except RecursionError:  # e.g. 3,000 nested arrays: no column of ours holds that
        raise field_error(table, name, "nests too deeply") from None


def _utc(moment: Any) -> Any:
    """The forms send times without a zone: they are UTC."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _same(old: Any, new: Any) -> bool:
    """Equal as stored: the forms send numbers as text and times cut to seconds."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        return bool(abs((_utc(old) - _utc(new)).total_seconds()) < 1)
    if isinstance(old, Decimal | int | float) and not isinstance(old, bool):
        try:
            return Decimal(str(old)) == Decimal(str(new))
        except ArithmeticError:
            return False
    return bool(old == new)


@dataclass(frozen=True)
class WriteRules:
    """One admin table's write rules."""

    table: type[Table]
    editable: frozenset[str]
    check: Check = field(default=lambda changes, row, current: None)
    actor_on_insert: tuple[str, ...] = ()
    actor_on_update: tuple[str, ...] = ()
    optimistic_version: bool = False
    updatable: frozenset[str] | None = None
    """What may change after creation, when less than `editable`."""
    service: ServiceWrites | None = None
    """The domain's writes; without one the hook checks and Piccolo writes."""

    async def _via_service(self, write: Awaitable[Any]) -> Any:
        try:
            return await write
        except AppError as error:
            name = str((error.extra or {}).get("field", "")) or "value"
            raise field_error(self.table, name, error.detail, error.status_code) from None

    async def _checked(self, changes: Values, row: Values, current: Values | None) -> None:
        try:
            outcome = self.check(changes, row, current)
            if inspect.isawaitable(outcome):
                await outcome
        except AppError as error:
            name = str((error.extra or {}).get("field", "")) or "value"
            raise field_error(self.table, name, error.detail) from None

    def _stored(self, values: Values) -> dict[Any, Any]:
        """Column → value, JSON values as text (as Piccolo writes a form's values)."""
        json_names = _json_names(self.table)
        return {
            self.table._meta.get_column_by_name(k): json.dumps(v)
            if k in json_names and v is not None
            else v
            for k, v in values.items()
        }

    async def before_patch(self, row_id: Any, values: Mapping[Any, Any], request: Request) -> Any:
        current = await (
            self.table.select()
            .where(self.table._meta.primary_key == row_id)
            .lock_rows()  # the admin mount's write transaction: no change slips in between
            .first()
        )
        if current is None:
            raise HTTPException(status_code=404, detail="This row no longer exists")
        sent = {getattr(column, "_meta", column).name: value for column, value in values.items()}
        unknown = set(sent) - _names(self.table)
        if unknown:
            raise field_error(self.table, sorted(unknown)[0], "is not a field of this table", 400)
        current = {name: _decoded(self.table, name, value) for name, value in current.items()}
        sent = {name: _decoded(self.table, name, value) for name, value in sent.items()}
        editable = self.editable if self.updatable is None else self.updatable
        if self.optimistic_version:
            if not _same(current["version"], sent.get("version")):
                raise field_error(self.table, "version", STALE_SAVE, 409)
            sent.pop("version")
        changes: Values = {}
        for name, value in sent.items():
            if _same(current[name], value):
                continue
            if name not in editable:
                if isinstance(current[name], datetime) and name not in self.editable:
                    continue  # owned by the database; its triggers keep it
                raise field_error(self.table, name, "cannot be changed here")
            changes[name] = value
        unchanged = {self.table._meta.primary_key: row_id}  # Piccolo's write is then a no-op
        if not changes:
            return unchanged
        if self.service is not None:
            version = current["version"] if self.optimistic_version else None
            await self._via_service(self.service.update(row_id, changes, version, current_writer()))
            return unchanged
        await self._checked(changes, {**current, **changes}, current)
        actor = await _actor_id(self.table)
        for name in self.actor_on_update:
            changes[name] = actor
        return self._stored(changes)

    async def before_insert(self, row: Table, request: Request) -> Table:
        values: Values = {}
        for column in self.table._meta.columns:
            name = column._meta.name
            value = _decoded(self.table, name, getattr(row, name))
            if name in self.editable:
                values[name] = value
                continue
            chosen = (
                value is not None
                and column is not self.table._meta.primary_key
                and not isinstance(value, datetime)  # owned by the database
                and not _same(column.get_default_value(), value)  # the form's default
            )
            if chosen:
                raise field_error(self.table, name, "cannot be set here")
        if self.service is not None:
            row_id = await self._via_service(self.service.create(values, current_writer()))
            return AlreadyWritten(self.table._meta.primary_key._meta.name, row_id)  # type: ignore[return-value]
        await self._checked(values, values, None)
        actor = await _actor_id(self.table)
        for name in self.actor_on_insert:
            values[name] = actor
        return self.table(**{column._meta.name: v for column, v in self._stored(values).items()})

    async def before_delete(self, row_id: Any, request: Request) -> None:
        if self.service is not None:
            await self._via_service(self.service.delete(row_id, current_writer()))

    def hooks(self) -> list[Hook]:
        return [
            Hook(hook_type=HookType.pre_save, callable=self.before_insert),
            Hook(hook_type=HookType.pre_patch, callable=self.before_patch),
            Hook(hook_type=HookType.pre_delete, callable=self.before_delete),
        ]


async def _actor_id(table: type[Table]) -> int | None:
    """The super-admin behind this write, as the admin mount recorded it for the triggers."""
    rows = await table.raw("SELECT nullif(current_setting('app.actor_id', true), '') AS actor")
    actor = rows[0]["actor"] if rows else None
    return int(actor) if actor else None


async def _flag_variants(flag_id: Any) -> dict[str, Any]:
    """The variants of the flag a row names, its row locked: a change of the variants and a
    write naming one of them never pass each other."""
    flag = None
    if isinstance(flag_id, int) and not isinstance(flag_id, bool):
        flag = (
            await FeatureFlag.select(FeatureFlag.variants)
            .where(FeatureFlag.id == flag_id)
            .lock_rows()
            .output(load_json=True)
            .first()
        )
    if flag is None:
        raise InvalidInput("flag_id must name an existing flag", extra={"field": "flag_id"})
    return dict(flag["variants"])


async def check_flag(changes: Values, row: Values, current: Values | None) -> None:
    cleaned = validate_flag_changes(changes, current)
    if current is not None and "variants" in cleaned:
        await require_variants_unused(current["id"], current["variants"] or {}, cleaned["variants"])
    changes.update(cleaned)


async def check_flag_override(changes: Values, row: Values, current: Values | None) -> None:
    expires = _utc(row.get("expires_at"))
    validate_override(
        user_id=row.get("user_id"),
        node_id=row.get("node_id"),
        variant=row.get("variant"),
        variants=await _flag_variants(row.get("flag_id")),
        reason=row.get("reason") or "",
        expires_at=expires if "expires_at" in changes else None,
    )


async def check_rule(changes: Values, row: Values, current: Values | None) -> None:
    for values in (changes, row):  # an empty variant box means "no variant"
        if values.get("variant") == "":
            values["variant"] = None
    changes.update(validate_rule(changes, row, await _flag_variants(row.get("flag_id"))))
    rule_id = current.get("id") if current else None
    await require_flag_pattern_budget(row.get("flag_id"), rule_id, changes.get("conditions"))


def check_segment(changes: Values, row: Values, current: Values | None) -> None:
    changes.update(validate_segment(changes))


async def check_schedule(changes: Values, row: Values, current: Values | None) -> None:
    """A new change is checked whole; after that only pending → cancelled."""
    if current is not None:
        validate_schedule_change(current["status"], changes)
        return
    changes.update(
        validate_schedule(
            action=row.get("action"),
            run_at=_utc(row.get("run_at")),
            rollout_percentage=row.get("rollout_percentage"),
            variant=row.get("variant") or None,
            note=row.get("note") or "",
            variants=await _flag_variants(row.get("flag_id")),
        )
    )
