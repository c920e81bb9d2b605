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
