"""Who a verified login becomes (PRODUCT §5, F5, F9).

Users are keyed on (issuer, subject). A new user joins, as `viewer`, the organization that
claims their verified e-mail domain, else the optional DEFAULT_ORGANIZATION, else nothing
until someone assigns them. A super-admin grant made by e-mail before the first login is
linked only when the provider says the e-mail is verified.

`users.email` holds only an address the provider has verified (else NULL), so everything
keyed on it — grants by e-mail, the unique column — trusts only verified owners: an
unverified login can neither receive a grant meant for the address nor block its owner,
and a verified login takes the address from any other row still holding it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from api.auth.claims import Identity
from api.auth.identity import Caller
from api.platform.config import Settings
from api.platform.db.audit import record_audit
from api.platform.db.sql import fetch
from api.platform.http.errors import Conflict
from tables.enums import NodeLevel, Role
from tables.hierarchy import HierarchyNode, UserHierarchyAssignment
from tables.users import SuperAdminGrant, User

UPSERT_USER = (
    "INSERT INTO users (oidc_issuer, oidc_subject, email, email_verified, name, given_name,"
    " family_name, last_login_at)"
    " VALUES ($1, $2, $3::varchar, $3::varchar IS NOT NULL, $4, $5, $6, now())"
    " ON CONFLICT (oidc_issuer, oidc_subject) DO UPDATE SET email = EXCLUDED.email,"
    " email_verified = EXCLUDED.email_verified,"
    " name = EXCLUDED.name, given_name = EXCLUDED.given_name,"
    " family_name = EXCLUDED.family_name, last_login_at = now(), updated_at = now()"
    " RETURNING id, email, is_active, is_super_admin, (xmax = 0) AS created"
)
"""Insert or refresh in one round trip; `xmax = 0` (not sayable in the query builder's
`returning`) tells a first login from a returning one."""


@dataclass(frozen=True, slots=True)
class ProvisionedUser:
    user_id: int
    email: str | None
    is_active: bool
    is_super_admin: bool
    created: bool


async def _take_address(email: str, issuer: str, subject: str) -> None:
    """A verified login owns its address: release it from any other row (audited)."""
    released = (
        await User.update({User.email: None, User.updated_at: datetime.now(UTC)})
        .where(User.email == email)
        .where((User.oidc_issuer != issuer) | (User.oidc_subject != subject))
        .returning(User.id)
    )
    for row in released:
        await record_audit(
            action="user.email_released",
            resource_type="user",
            resource_id=row["id"],
            actor=None,
            before={"email": email},
            after={"email": None, "taken_by": {"issuer": issuer, "subject": subject}},
        )


async def _organization_for(email: str | None, settings: Settings) -> int | None:
    """Only a verified address may place a user in the organization claiming its domain."""
    organizations = HierarchyNode.select(HierarchyNode.id).where(
        HierarchyNode.level == NodeLevel.organization.value, HierarchyNode.is_active.eq(True)
    )
    if email:
        domain = email.rsplit("@", 1)[1]
        row = await (
            organizations.where(HierarchyNode.email_domains.any(domain))
            .order_by(HierarchyNode.id)
            .first()
        )
        if row is not None:
            return int(row["id"])
    if settings.default_organization:
        row = await organizations.where(
            HierarchyNode.parent_id.is_null(), HierarchyNode.slug == settings.default_organization
        ).first()
        if row is not None:
            return int(row["id"])
    return None


async def provision_user(identity: Identity, settings: Settings) -> ProvisionedUser:
    """Create or refresh the user for verified claims. Call inside the login transaction.

    `identity` was checked whole (`api.auth.claims`): every value is stored as it is."""
    email, subject = identity.email, identity.subject
    if email is not None:
        await _take_address(email, settings.oidc_issuer, subject)
    try:
        rows = await fetch(
            UPSERT_USER,
            settings.oidc_issuer,
            subject,
            email,
            identity.name,
            identity.given_name,
            identity.family_name,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "Another account already uses this e-mail address",
            extra={"reason": "email_in_use"},
        ) from None
    row = rows[0]
    user = ProvisionedUser(
        user_id=row["id"],
        email=row["email"],
        is_active=row["is_active"],
        is_super_admin=row["is_super_admin"],
        created=row["created"],
    )
    actor = Caller(user.user_id, user.email, user.is_super_admin, via="session")
    if user.created:
        await record_audit(
            action="user.provisioned",
            resource_type="user",
            resource_id=user.user_id,
            actor=actor,
            after={"email": email, "issuer": settings.oidc_issuer, "subject": subject},
        )
        organization = await _organization_for(email, settings)
        if organization is not None:
            await UserHierarchyAssignment.insert(
                UserHierarchyAssignment(
                    user_id=user.user_id,
                    node_id=organization,
                    role=Role.viewer.value,
                    is_primary=True,
                )
            )
            await record_audit(
                action="assignment.created",
                resource_type="assignment",
                resource_id=f"{user.user_id}@{organization}",
                actor=actor,
                after={"node_id": organization, "role": "viewer", "source": "provisioning"},
            )
    if email and not user.is_super_admin:
        granted = (
            await SuperAdminGrant.delete()
            .where(SuperAdminGrant.email == email)
            .returning(SuperAdminGrant.id)
        )
        if granted:
            await User.update({User.is_super_admin: True}).where(User.id == user.user_id)
            await record_audit(
                action="super_admin.linked",
                resource_type="user",
                resource_id=user.user_id,
                actor=actor,
                before={"is_super_admin": False},
                after={"is_super_admin": True, "email": email},
            )
            user = ProvisionedUser(user.user_id, email, user.is_active, True, user.created)
    return user
