"""Request and response bodies of the hierarchy and users API, as msgspec Structs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from tables.enums import NodeLevel, Permission, Role


class NodeCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    slug: str
    settings: dict[str, Any] | None = None


class OrganizationCreate(NodeCreate, forbid_unknown_fields=True):
    email_domains: list[str] = msgspec.field(default_factory=list)


class NodeUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    slug: str | msgspec.UnsetType = msgspec.UNSET
    settings: dict[str, Any] | msgspec.UnsetType | None = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    email_domains: list[str] | msgspec.UnsetType = msgspec.UNSET
    managed_settings: list[str] | msgspec.UnsetType = msgspec.UNSET
    """Settings keys only super-admins change (super-admins only, organizations only)."""
    version: int | msgspec.UnsetType = msgspec.UNSET
    """The `version` the change is built on: 409 when the node has changed since."""


class Move(msgspec.Struct, forbid_unknown_fields=True):
    parent_id: int


class AssignmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    user_id: int
    role: Role
    is_primary: bool = False


class AssignmentUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    role: Role | msgspec.UnsetType = msgspec.UNSET
    is_primary: bool | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    version: int | msgspec.UnsetType = msgspec.UNSET


class OverrideCreate(msgspec.Struct, forbid_unknown_fields=True):
    user_id: int
    permission: Permission
    granted: bool
    reason: str
    expires_at: datetime | None = None


class OverrideUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What may change on an override after it is made (the admin edits these)."""

    granted: bool | msgspec.UnsetType = msgspec.UNSET
    reason: str | msgspec.UnsetType = msgspec.UNSET
    expires_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    version: int | msgspec.UnsetType = msgspec.UNSET


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    is_super_admin: bool | msgspec.UnsetType = msgspec.UNSET
    name: str | msgspec.UnsetType = msgspec.UNSET
    given_name: str | msgspec.UnsetType = msgspec.UNSET
    family_name: str | msgspec.UnsetType = msgspec.UNSET
    version: int | msgspec.UnsetType = msgspec.UNSET


class Node(msgspec.Struct):
    id: int
    parent_id: int | None
    level: NodeLevel
    name: str
    slug: str
    path: list[int]
    is_active: bool
    settings: dict[str, Any] | None
    email_domains: list[str]
    managed_settings: list[str]
    version: int


class OrganizationSummary(msgspec.Struct):
    """An organization the caller belongs to but may not read in full."""

    id: int
    name: str
    slug: str


class Assignment(msgspec.Struct):
    """A role held by one person at one node."""

    id: int
    user_id: int
    node_id: int
    role: Role
    is_primary: bool
    is_active: bool
    granted_by_id: int | None
    derived_from: list[int]
    """The permission overrides the grantor's authority rested on: revoking one ends this."""
    version: int
    created_at: datetime


class PermissionOverrideRow(msgspec.Struct):
    id: int
    user_id: int
    node_id: int
    permission: Permission
    granted: bool
    reason: str
    granted_by_id: int | None
    expires_at: datetime | None
    derived_from: list[int]
    """The overrides the grantor's authority rested on: this ends with them (PRODUCT §3.1)."""
    version: int
    created_at: datetime


class UserStatus(msgspec.Struct):
    """A person's standing: active or not, super-admin or not (what PATCH /users changes)."""

    id: int
    email: str | None
    is_active: bool
    is_super_admin: bool
    version: int


class UserRecord(UserStatus):
    """What the audit trail keeps of a person's editable fields."""

    name: str
    given_name: str
    family_name: str


class VisibleUser(msgspec.Struct):
    id: int
    email: str | None
    name: str
    is_active: bool
    is_super_admin: bool


class PermissionReason(msgspec.Struct):
    permission: str
    granted: bool
    source: str
    node_id: int | None
    role: str | None


class EffectivePermissions(msgspec.Struct):
    user_id: int
    node_id: int
    permissions: list[PermissionReason]
