"""Enumerated column values: one spelling, shared by Python and the CHECK constraints (F3)."""

from enum import StrEnum


class NodeLevel(StrEnum):
    organization = "organization"
    location = "location"
    department = "department"


class Role(StrEnum):
    org_admin = "org_admin"
    location_manager = "location_manager"
    department_lead = "department_lead"
    user = "user"
    viewer = "viewer"


class Permission(StrEnum):
    read = "read"
    write = "write"
    delete = "delete"
    admin = "admin"
    manage_users = "manage_users"
    manage_settings = "manage_settings"
    view_reports = "view_reports"
    export_data = "export_data"


def sql_in(column: str, enum: type[StrEnum]) -> str:
    """The CHECK condition for an enumerated column; written as SQL text (see STACK_NOTES)."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"{column} IN ({values})"


class FlagType(StrEnum):
    """What a flag's variants hold; OFREP returns values of exactly this JSON type."""

    boolean = "boolean"
    string = "string"
    integer = "integer"
    float = "float"
    object = "object"


class ScheduleAction(StrEnum):
    enable = "enable"
    disable = "disable"
    set_rollout = "set_rollout"
    set_default_variant = "set_default_variant"


class ScheduleStatus(StrEnum):
    pending = "pending"
    applied = "applied"
    cancelled = "cancelled"
    failed = "failed"
