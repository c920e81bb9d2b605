"""Request and response bodies of the hierarchy and users API, as msgspec Structs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


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


class Move(msgspec.Struct, forbid_unknown_fields=True):
    parent_id: int


class AssignmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    user_id: int
    role: str
    is_primary: bool = False


class AssignmentUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    role: str | msgspec.UnsetType = msgspec.UNSET
    is_primary: bool | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET


class OverrideCreate(msgspec.Struct, forbid_unknown_fields=True):
    user_id: int
    permission: str
    granted: bool
    reason: str
    expires_at: datetime | None = None


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    is_super_admin: bool | msgspec.UnsetType = msgspec.UNSET


class Node(msgspec.Struct):
    id: int
    parent_id: int | None
    level: str
    name: str
    slug: str
    path: list[int]
    is_active: bool
    settings: dict[str, Any] | None
    email_domains: list[str]


class OrganizationSummary(msgspec.Struct):
    """An organization the caller belongs to but may not read in full."""

    id: int
    name: str
    slug: str


class Assignment(msgspec.Struct):
    id: int
    user_id: int
    node_id: int
    role: str
    is_primary: bool
    is_active: bool
    granted_by_id: int | None
    created_at: datetime


class PermissionOverrideRow(msgspec.Struct):
    id: int
    user_id: int
    node_id: int
    permission: str
    granted: bool
    reason: str
    granted_by_id: int | None
    expires_at: datetime | None
    created_at: datetime


class UserFlags(msgspec.Struct):
    id: int
    email: str | None
    is_active: bool
    is_super_admin: bool


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
