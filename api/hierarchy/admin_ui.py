"""The hierarchy's and users' tables in Piccolo Admin, written by this domain's service.

The admin's hooks (api/admin_ui/write_hooks.py) compute what a save changed and hand it to
the objects below, which call the same service functions as the REST API: the same rules,
the same sentences, the same audit and no write at all when nothing changed. Every table
here keeps optimistic concurrency (`version`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from api.admin_ui.write_hooks import AdminWriter, Values, WriteRules, _utc
from api.hierarchy import service
from api.hierarchy.rules import invalid
from api.hierarchy.schemas import (
    AssignmentCreate,
    AssignmentUpdate,
    NodeCreate,
    NodeUpdate,
    OrganizationCreate,
    OverrideCreate,
    OverrideUpdate,
    UserUpdate,
)
from api.platform.http.errors import Forbidden
from tables.enums import NodeLevel
from tables.hierarchy import HierarchyNode, HierarchyPermissionOverride, UserHierarchyAssignment
from tables.users import User


def _id(values: Values, name: str) -> int:
    value = values.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(name, f"{name} must name an existing row")
    return value


def _text(values: Values, name: str) -> Any:
    return values.get(name) or ""


class NodeWrites:
    """Nodes: an organization when there is no parent, else a child of its parent."""

    async def create(self, values: Values, writer: AdminWriter) -> Any:
        caller, connection = writer.caller, writer.connection
        parent = values.get("parent_id")
        level = values.get("level")
        if parent is None:
            if level not in (None, "", NodeLevel.organization):
                raise invalid("level", "a node without a parent is an organization")
            node = await service.create_organization(
                connection,
                caller,
                OrganizationCreate(
                    name=values["name"],  # the service checks each value
                    slug=values["slug"],
                    settings=values.get("settings"),
                    email_domains=values.get("email_domains") or [],
                ),
                values.get("managed_settings") or [],
            )
        else:
            parent_id = _id(values, "parent_id")
            if values.get("email_domains") or values.get("managed_settings"):
                field = "email_domains" if values.get("email_domains") else "managed_settings"
                raise invalid(field, f"only organizations have {field.replace('_', ' ')}")
            node = await service.create_child(
                connection,
                caller,
                parent_id,
                NodeCreate(
                    name=values["name"], slug=values["slug"], settings=values.get("settings")
                ),
            )
            if level not in (None, "", node.level):
                raise invalid("level", f"a child of this parent is a {node.level}")
        if values.get("is_active") is False:
            await service.update_node(connection, caller, node.id, NodeUpdate(is_active=False))
        return node.id

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        caller, connection = writer.caller, writer.connection
        if "level" in changes:
            raise invalid("level", "the level follows from the parent: move the node instead")
        rest = dict(changes)
        if "parent_id" in rest:
            parent = rest.pop("parent_id")
            if parent is None:
                raise invalid("parent_id", "a node cannot become an organization")
            await service.move_node(connection, caller, row_id, _id(changes, "parent_id"), version)
            version = None  # checked once, before this save's first write
        if rest:
            data = msgspec.structs.replace(NodeUpdate(), **rest)
            if version is not None:
                data = msgspec.structs.replace(data, version=version)
            await service.update_node(connection, caller, row_id, data)

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        await service.delete_node(writer.connection, writer.caller, row_id)


class AssignmentWrites:
    async def create(self, values: Values, writer: AdminWriter) -> Any:
        data = AssignmentCreate(
            user_id=values.get("user_id"),  # type: ignore[arg-type]  # checked by the service
            role=service.clean_role(values.get("role")),
            is_primary=bool(values.get("is_primary")),
        )
        created = await service.assign_role(
            writer.connection, writer.caller, _id(values, "node_id"), data
        )
        if values.get("is_active") is False:
            await service.update_assignment(
                writer.connection, writer.caller, created.id, AssignmentUpdate(is_active=False)
            )
        return created.id

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        data = AssignmentUpdate(version=version if version is not None else msgspec.UNSET)
        if "role" in changes:
            data = msgspec.structs.replace(data, role=service.clean_role(changes["role"]))
        for name in ("is_primary", "is_active"):
            if name in changes:
                data = msgspec.structs.replace(data, **{name: bool(changes[name])})
        await service.update_assignment(writer.connection, writer.caller, row_id, data)

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        await service.remove_assignment(writer.connection, writer.caller, row_id)


class OverrideWrites:
    async def create(self, values: Values, writer: AdminWriter) -> Any:
        expires = _utc(values.get("expires_at"))
        if expires is not None and not isinstance(expires, datetime):
            raise invalid("expires_at", "expires_at must be a date-time")
        data = OverrideCreate(
            user_id=values.get("user_id"),  # type: ignore[arg-type]  # checked by the service
            permission=service.clean_permission(values.get("permission")),
            granted=bool(values.get("granted")),
            reason=_text(values, "reason"),
            expires_at=expires,
        )
        created = await service.set_override(
            writer.connection, writer.caller, _id(values, "node_id"), data
        )
        return created.id

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        data = OverrideUpdate(version=version if version is not None else msgspec.UNSET)
        if "granted" in changes:
            data = msgspec.structs.replace(data, granted=bool(changes["granted"]))
        if "reason" in changes:
            data = msgspec.structs.replace(data, reason=_text(changes, "reason"))
        if "expires_at" in changes:
            data = msgspec.structs.replace(data, expires_at=_utc(changes["expires_at"]))
        await service.update_override(writer.connection, writer.caller, row_id, data)

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        await service.remove_override(writer.connection, writer.caller, row_id)


class UserWrites:
    """People come from their first login, and super-admin from the audited command."""

    async def create(self, values: Values, writer: AdminWriter) -> Any:
        raise Forbidden("People are created by their first login", extra={"field": "email"})

    async def update(
        self, row_id: Any, changes: Values, version: int | None, writer: AdminWriter
    ) -> None:
        data = msgspec.structs.replace(UserUpdate(), **changes)
        if version is not None:
            data = msgspec.structs.replace(data, version=version)
        await service.update_user(writer.connection, writer.caller, row_id, data)

    async def delete(self, row_id: Any, writer: AdminWriter) -> None:
        raise Forbidden("People are deactivated, never deleted", extra={"field": "is_active"})


NODE_RULES = WriteRules(
    HierarchyNode,
    editable=frozenset(
        {
            "parent_id",
            "level",
            "name",
            "slug",
            "is_active",
            "settings",
            "email_domains",
            "managed_settings",
        }
    ),
    optimistic_version=True,
    service=NodeWrites(),
)
ASSIGNMENT_RULES = WriteRules(
    UserHierarchyAssignment,
    editable=frozenset({"user_id", "node_id", "role", "is_primary", "is_active"}),
    updatable=frozenset({"role", "is_primary", "is_active"}),
    optimistic_version=True,
    service=AssignmentWrites(),
)
PERMISSION_OVERRIDE_RULES = WriteRules(
    HierarchyPermissionOverride,
    editable=frozenset({"user_id", "node_id", "permission", "granted", "reason", "expires_at"}),
    updatable=frozenset({"granted", "reason", "expires_at"}),
    optimistic_version=True,
    service=OverrideWrites(),
)
USER_RULES = WriteRules(
    User,
    editable=frozenset({"name", "given_name", "family_name", "is_active"}),
    optimistic_version=True,
    service=UserWrites(),
)
