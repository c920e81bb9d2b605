"""What a super-admin may write through Piccolo Admin, checked by the API's own rules.

Configured through piccolo_api's own hooks (pre_save, pre_patch), not by patching it:
piccolo_admin has no read-only columns (piccolo-orm/piccolo_admin#138).

Piccolo Admin's forms send every field of the row back on save, timestamps cut to whole
seconds included. So each write keeps only the fields of the table's editable set whose
value really changed; a changed field outside that set is refused with a sentence, never
written. The changed values then go through the same validation as the REST API, and the
actor columns (`created_by_id`, ...) are set from the signed-in super-admin, never from the
form. Errors answer 422 in the shape the admin shows next to the form: "Field - sentence".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from piccolo.table import Table
from piccolo_api.crud.hooks import Hook, HookType
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.errors import AppError, InvalidInput
from api.flags.validation import (
    require_current_version,
    validate_flag_changes,
    validate_override,
)
from api.validation import (
    validate_domains,
    validate_expiry,
    validate_grant_reason,
    validate_name,
    validate_slug,
)

Values = dict[str, Any]
Check = Callable[[Values, Values], None]


def field_error(table: type[Table], name: str, message: str, status: int = 422) -> HTTPException:
    """The admin renders `detail[i]` as "<loc[-1]> field - <msg>": name the field as the
    form labels it (pydantic's title of the column name)."""
    label = name.replace("_", " ").title()
    text = message.removeprefix(f"{name} ").strip()
    detail: Any = [{"loc": ["body", label], "msg": text, "type": "value_error"}]
    return HTTPException(status_code=status, detail=detail)


def _names(table: type[Table]) -> set[str]:
    return {column._meta.name for column in table._meta.columns}


def _same(old: Any, new: Any) -> bool:
    """Equal as stored: the forms send numbers as text and times cut to seconds."""
    if isinstance(old, datetime) and isinstance(new, datetime):
        return abs((old - new).total_seconds()) < 1
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
    check: Check = field(default=lambda changes, row: None)
    actor_on_insert: tuple[str, ...] = ()
    actor_on_update: tuple[str, ...] = ()
    optimistic_version: bool = False

    def _checked(self, changes: Values, row: Values) -> None:
        try:
            self.check(changes, row)
        except AppError as error:
            name = str((error.extra or {}).get("field", "")) or "value"
            raise field_error(self.table, name, error.detail) from None

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
        if self.optimistic_version and "version" in sent:
            try:
                require_current_version(current["version"], sent["version"])
            except AppError as stale:
                raise field_error(self.table, "version", stale.detail, stale.status_code) from None
        changes: Values = {}
        for name, value in sent.items():
            if _same(current[name], value):
                continue
            if name not in self.editable:
                if isinstance(current[name], datetime):
                    continue  # owned by the database; its triggers keep it
                raise field_error(self.table, name, "cannot be changed here")
            changes[name] = value
        self._checked(changes, {**current, **changes})
        actor = await _actor_id(self.table)
        for name in self.actor_on_update:
            changes[name] = actor
        return {self.table._meta.get_column_by_name(k): v for k, v in changes.items()}

    async def before_insert(self, row: Table, request: Request) -> Table:
        values: Values = {}
        for column in self.table._meta.columns:
            name = column._meta.name
            value = getattr(row, name)
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
        self._checked(values, values)
        actor = await _actor_id(self.table)
        for name in self.actor_on_insert:
            values[name] = actor
        return self.table(**values)

    def hooks(self) -> list[Hook]:
        return [
            Hook(hook_type=HookType.pre_save, callable=self.before_insert),
            Hook(hook_type=HookType.pre_patch, callable=self.before_patch),
        ]


async def _actor_id(table: type[Table]) -> int | None:
    """The super-admin behind this write, as the admin mount recorded it for the triggers."""
    rows = await table.raw("SELECT nullif(current_setting('app.actor_id', true), '') AS actor")
    actor = rows[0]["actor"] if rows else None
    return int(actor) if actor else None


def check_flag(changes: Values, row: Values) -> None:
    validate_flag_changes(changes)


def check_flag_override(changes: Values, row: Values) -> None:
    expires = row.get("expires_at")
    if isinstance(expires, datetime) and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    validate_override(
        user_id=row.get("user_id"),
        node_id=row.get("node_id"),
        enabled=row.get("enabled"),
        reason=row.get("reason") or "",
        expires_at=expires if "expires_at" in changes else None,
    )


def check_node(changes: Values, row: Values) -> None:
    cleaners: dict[str, Callable[[Any], Any]] = {
        "name": validate_name,
        "slug": validate_slug,
        "email_domains": validate_domains,
    }
    for name, clean in cleaners.items():
        if name in changes:
            changes[name] = clean(changes[name])


def check_names(changes: Values, row: Values) -> None:
    for name in ("name", "given_name", "family_name"):
        value = changes.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 200):
            raise InvalidInput(f"{name} must be at most 200 characters", extra={"field": name})


def check_permission_override(changes: Values, row: Values) -> None:
    """The API's rules for a permission override: a reason, an expiry in the future."""
    if "reason" in changes:
        changes["reason"] = validate_grant_reason(changes["reason"])
    validate_expiry(changes.get("expires_at"))
