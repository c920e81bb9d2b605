"""The permission rule of PRODUCT §3.1 as a matrix: every role by every permission by where
the role sits relative to the node asked about, with and without overrides."""

from __future__ import annotations

import pytest

from api.hierarchy.permissions import ROLE_PERMISSIONS, HeldRole, PermissionOverride, decide
from tables.enums import Permission, Role

# Two tenants. Tenant 1: org 1 > locations 10, 20 > departments 11 (under 10), 21 (under 20).
# Tenant 2: org 2 > location 30 > department 31.
PATHS = {
    1: (1,),
    10: (1, 10),
    11: (1, 10, 11),
    20: (1, 20),
    21: (1, 20, 21),
    2: (2,),
    30: (2, 30),
    31: (2, 30, 31),
}
ROLE_AT = 10  # the role is always held at location 10
# where the asked-about node sits relative to the role's node, and whether the role covers it
PLACES = [("at_the_node", 10, True), ("below_it", 11, True), ("above_it", 1, False),
          ("in_a_sibling_subtree", 21, False), ("in_another_tenant", 31, False)]  # fmt: skip

EXPECTED = {
    Role.org_admin: set(Permission),
    Role.location_manager: {"read", "write", "manage_users", "view_reports"},
    Role.department_lead: {"read", "write", "view_reports"},
    Role.user: {"read", "view_reports"},
    Role.viewer: {"read"},
}


def test_the_role_table_is_the_specifications() -> None:
    assert {role: {p.value for p in perms} for role, perms in ROLE_PERMISSIONS.items()} == {
        role: {p if isinstance(p, str) else p.value for p in perms}
        for role, perms in EXPECTED.items()
    }


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize(("place", "node", "covered"), PLACES, ids=[p[0] for p in PLACES])
def test_role_matrix_without_overrides(
    role: Role, permission: Permission, place: str, node: int, covered: bool
) -> None:
    decision = decide(permission, PATHS[node], [HeldRole(ROLE_AT, role)], [], is_super_admin=False)
    assert decision.granted is (covered and permission in ROLE_PERMISSIONS[role])
    if decision.granted:
        assert (decision.source, decision.node_id, decision.role) == ("role", ROLE_AT, role)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize(("place", "node", "covered"), PLACES, ids=[p[0] for p in PLACES])
def test_revoking_override_at_the_node_beats_any_inherited_grant(
    role: Role, permission: Permission, place: str, node: int, covered: bool
) -> None:
    revoked = [PermissionOverride(node, permission, False)]
    decision = decide(
        permission, PATHS[node], [HeldRole(ROLE_AT, role)], revoked, is_super_admin=False
    )
    assert decision.granted is False
    assert decision.source == "override"


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize(("place", "node", "covered"), PLACES, ids=[p[0] for p in PLACES])
def test_granting_override_at_the_node_grants_without_a_role(
    role: Role, permission: Permission, place: str, node: int, covered: bool
) -> None:
    granted = [PermissionOverride(node, permission, True)]
    decision = decide(
        permission, PATHS[node], [HeldRole(ROLE_AT, role)], granted, is_super_admin=False
    )
    assert decision.granted is True
    assert (decision.source, decision.node_id) == ("override", node)


def test_nearest_override_wins() -> None:
    overrides = [
        PermissionOverride(1, Permission.export_data, True),
        PermissionOverride(10, Permission.export_data, False),
    ]
    assert (
        decide(Permission.export_data, PATHS[11], [], overrides, is_super_admin=False).granted
        is False
    )
    overrides = [
        PermissionOverride(1, Permission.export_data, False),
        PermissionOverride(10, Permission.export_data, True),
    ]
    assert (
        decide(Permission.export_data, PATHS[11], [], overrides, is_super_admin=False).granted
        is True
    )


def test_an_override_above_the_role_still_decides() -> None:
    """The first override on the walk up decides, even above the node holding the role."""
    roles = [HeldRole(11, Role.org_admin)]
    overrides = [PermissionOverride(1, Permission.delete, False)]
    assert (
        decide(Permission.delete, PATHS[11], roles, overrides, is_super_admin=False).granted
        is False
    )


def test_overrides_off_the_path_are_ignored() -> None:
    overrides = [PermissionOverride(20, Permission.read, True)]
    assert decide(Permission.read, PATHS[11], [], overrides, is_super_admin=False).granted is False


def test_overrides_for_other_permissions_are_ignored() -> None:
    overrides = [PermissionOverride(11, Permission.read, False)]
    decision = decide(
        Permission.write,
        PATHS[11],
        [HeldRole(10, Role.department_lead)],
        overrides,
        is_super_admin=False,
    )
    assert decision.granted is True


@pytest.mark.parametrize("permission", list(Permission))
def test_super_admins_hold_everything_everywhere(permission: Permission) -> None:
    overrides = [PermissionOverride(31, permission, False)]
    decision = decide(permission, PATHS[31], [], overrides, is_super_admin=True)
    assert (decision.granted, decision.source) == (True, "super_admin")


def test_the_nearest_role_is_reported_as_the_reason() -> None:
    roles = [HeldRole(1, Role.viewer), HeldRole(10, Role.user)]
    decision = decide(Permission.read, PATHS[11], roles, [], is_super_admin=False)
    assert (decision.node_id, decision.role) == (10, Role.user)
