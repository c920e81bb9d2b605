"""The query parameters of Piccolo Admin's read API, checked before the admin sees them.

piccolo_api parses ordering, filters and pages itself and answered 500 on many inputs
(`?__order=-`, a repeated filter, `?variants=abc` on a JSON column, `1e999`, huge integers,
NUL bytes, unknown columns). Here every parameter of a table's list, count and id-picker
endpoints is checked against the table's own columns and types, and anything else is
refused with 400 and one sentence. What passes is what the admin's own pages send.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from urllib.parse import parse_qsl

from piccolo.columns import (
    JSON,
    JSONB,
    Array,
    BigInt,
    BigSerial,
    Boolean,
    Column,
    Date,
    DoublePrecision,
    ForeignKey,
    Integer,
    Numeric,
    Real,
    Serial,
    SmallInt,
    Text,
    Timestamp,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table
from piccolo_api.crud.endpoints import MATCH_TYPES, OPERATOR_MAP

from api.platform.http.errors import error_body

MAX_PAGE = 100_000
MAX_PAGE_SIZE = 1000  # piccolo_api's own max_page_size
MAX_OFFSET = 10_000_000
MAX_TEXT = 500
INT_LIMITS = {SmallInt: 2**15, Integer: 2**31, Serial: 2**31, BigInt: 2**63, BigSerial: 2**63}
BOOLEANS = frozenset({"true", "false", "t", "f", "1", "0", "yes", "no", "on", "off"})
DECIMAL = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,12})?")
INTEGER = re.compile(r"-?[0-9]{1,19}")
LIST_ENDPOINTS = ("", "count")
"""`/api/tables/<t>/` and `/api/tables/<t>/count/` take the same filters."""


class Refused(ValueError):
    """A parameter the admin's read API must not see; the message is the sentence."""


@cache
def _tables() -> dict[str, type[Table]]:
    from api.admin_ui.config import table_configs

    return {c.table_class._meta.tablename: c.table_class for c in table_configs()}


def _column(table: type[Table], name: str, purpose: str) -> Column:
    column = next((c for c in table._meta.columns if c._meta.name == name), None)
    if column is None:
        raise Refused(f"Cannot {purpose} {name!r}: not a field of {table._meta.tablename}")
    return column


def _bounded_int(text: str, name: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 12 or not low <= int(text) <= high:
        raise Refused(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _check_value(column: Column, name: str, value: str) -> None:
    """A filter value the column's type can hold (the admin sends `null` for "none")."""
    if value.lower() == "null":
        return
    if isinstance(column, Array):
        _check_value(column.base_column, name, value)
        return
    if isinstance(column, ForeignKey):
        column = column._foreign_key_meta.resolved_target_column
    if isinstance(column, JSON | JSONB):
        raise Refused(f"Cannot filter on {name!r}: it holds JSON")
    if isinstance(column, Boolean):
        if value.lower() not in BOOLEANS:
            raise Refused(f"{name} must be true or false")
    elif isinstance(column, SmallInt | Integer | BigInt | Serial | BigSerial):
        limit = next(v for k, v in INT_LIMITS.items() if isinstance(column, k))
        if not INTEGER.fullmatch(value) or not -limit <= int(value) < limit:
            raise Refused(f"{name} must be a whole number within its column's range")
    elif isinstance(column, Numeric | Real | DoublePrecision):
        if not DECIMAL.fullmatch(value):
            raise Refused(f"{name} must be a plain decimal number such as 12.5")
    elif isinstance(column, Timestamptz | Timestamp | Date):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise Refused(f"{name} must be a date and time such as 2026-01-31T12:00") from None
        if not 1900 <= moment.year <= 9999:
            raise Refused(f"{name} must be a date between the years 1900 and 9999")
    elif isinstance(column, Varchar | Text):
        if len(value) > MAX_TEXT:
            raise Refused(f"{name} must be at most {MAX_TEXT} characters")
    else:
        raise Refused(f"Cannot filter on {name!r}")


def _check_names(table: type[Table], value: str, purpose: str, *, signed: bool) -> None:
    parts = value.split(",")
    for part in parts:
        name = part[1:] if signed and part.startswith("-") else part
        if not name:
            raise Refused(f"Name a field to {purpose} by, e.g. ?__order=-id")
        _column(table, name, purpose)


def _check_list(table: type[Table], params: dict[str, str]) -> None:
    for key, value in params.items():
        if key == "__order":
            _check_names(table, value, "order by", signed=True)
        elif key == "__visible_fields":
            _check_names(table, value, "show", signed=False)
        elif key == "__page":
            _bounded_int(value, key, 1, MAX_PAGE)
        elif key == "__page_size":
            _bounded_int(value, key, 1, MAX_PAGE_SIZE)
        elif key in ("__readable", "__range_header"):
            if value.lower() not in BOOLEANS:
                raise Refused(f"{key} must be true or false")
        elif key == "__range_header_name":
            if not value.isprintable() or len(value) > 100:
                raise Refused(f"{key} must be a short name")
        elif key.endswith("__operator"):
            _column(table, key.removesuffix("__operator"), "filter on")
            if value not in OPERATOR_MAP:
                raise Refused(f"{key} must be one of {', '.join(sorted(OPERATOR_MAP))}")
        elif key.endswith("__match"):
            column = _column(table, key.removesuffix("__match"), "filter on")
            if value not in MATCH_TYPES or not isinstance(column, Varchar | Text):
                raise Refused(f"{key} must be one of {', '.join(MATCH_TYPES)}, on a text field")
        elif key.startswith("__"):
            raise Refused(f"Unknown parameter {key!r}")
        else:
            _check_value(_column(table, key, "filter on"), key, value)


def _check_ids(params: dict[str, str]) -> None:
    for key, value in params.items():
        if key == "search":
            if len(value) > MAX_TEXT:
                raise Refused(f"search must be at most {MAX_TEXT} characters")
        elif key == "limit":
            _bounded_int(value, key, 0, MAX_PAGE_SIZE)
        elif key == "offset":
            _bounded_int(value, key, 0, MAX_OFFSET)
        else:
            raise Refused(f"Unknown parameter {key!r}")


def list_params_problem(path: str, query_string: bytes) -> str | None:
    """Why the admin must not see this read, or None. `path` is the admin's own path."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["admin"]:
        parts = parts[1:]
    if len(parts) < 3 or parts[:2] != ["api", "tables"] or parts[2] not in _tables():
        return None
    table = _tables()[parts[2]]
    endpoint = "/".join(parts[3:])
    if endpoint not in (*LIST_ENDPOINTS, "ids"):
        return None
    try:
        text = query_string.decode("utf-8")
    except UnicodeDecodeError:
        return "The query string is not UTF-8"
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        return "The query string is malformed"
    params: dict[str, str] = {}
    try:
        for raw_key, value in pairs:
            key = raw_key.removesuffix("[]")
            if "\x00" in key or "\x00" in value:
                raise Refused("Parameters cannot contain NUL characters")
            if key in params:
                raise Refused(f"{key} is given more than once")
            params[key] = value
        if endpoint == "ids":
            _check_ids(params)
        else:
            _check_list(table, params)
    except Refused as refusal:
        return str(refusal)
    return None


def list_params_refusal(path: str, query_string: bytes) -> bytes | None:
    """The 400 JSON body refusing this read, or None when the admin may answer it."""
    problem = list_params_problem(path, query_string)
    if problem is None:
        return None
    return json.dumps(error_body(400, "bad_request", problem, None)).encode()
