"""The one write path of the auth domain: sessions started and ended, the users a login
provisions, super-admin granted and revoked. The routes, the login, the admin mount, the
hierarchy service (deactivation) and the `super_admins` command all call these.

Each write is one transaction (`change_transaction`) that checks what it is given with
`api.auth.rules`, locks what it reads before deciding, writes only what changes, records
what the audit trail promises (users and grants; sessions are login state, not audited)
and announces `sessions_changed` when a cached session may no longer be true: this
process's session cache drops at commit, before the writer answers (logout,
deactivation and demotion hold on the next request), and the triggers' NOTIFY tells the
other replicas. A write that finds nothing to change writes, records and announces nothing.

Who a verified login becomes (PRODUCT §5, F5, F9): users are keyed on (issuer, subject). A
new user joins, as `viewer`, the organization that claims their verified e-mail domain,
else the optional DEFAULT_ORGANIZATION, else nothing until someone assigns them. A
super-admin grant made by e-mail before the first login is linked only when the provider
says the e-mail is verified. `users.email` holds only an address the provider has verified
(else NULL), so everything keyed on it — grants by e-mail, the unique column — trusts only
verified owners: an unverified login can neither receive a grant meant for the address nor
block its owner, and a verified login takes the address from any other row still holding it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg

from api.auth import queries
from api.auth.identity import Caller
from api.auth.rules import Identity, grantable_email
from api.auth.sessions import csrf_token_for, hash_token, new_token, stream_key_for
from api.platform.config import Settings
from api.platform.db.audit import record_audit
from api.platform.db.changes import announce, change_transaction
from api.platform.http.errors import Conflict, Forbidden
from tables.enums import Role

SESSIONS_CHANNEL = "sessions_changed"
LOGIN_STATE_TTL = timedelta(minutes=10)
USER_AGENT_MAX = 500
"""`user_sessions.user_agent` is varchar(500): a longer header is kept cut, being only a hint."""


def sessions_changed() -> None:
    """Announce that sessions ended or a user's access changed (deactivation, demotion):
    this process drops its cached sessions when the write commits, before it answers; the
    triggers' NOTIFY tells the other replicas."""
    announce(SESSIONS_CHANNEL)


# ---- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartedSession:
    token: str
    session_id: int
    expires_at: datetime
    csrf_token: str


async def start_session(
    user_id: int,
    settings: Settings,
    *,
    client_ip: str | None = None,
    user_agent: str | None = None,
    id_token: str | None = None,
    claims: dict[str, Any] | None = None,
) -> StartedSession:
    """Create a session with a brand-new token (never reuse one: no fixation). Nothing can
    have cached it yet, so it announces nothing."""
    token = new_token()
    expires_at = datetime.now(UTC) + timedelta(hours=settings.session_max_hours)
    session_id = await queries.insert_session(
        hash_token(token),
        user_id,
        expires_at,
        client_ip=client_ip,
        user_agent=(user_agent or "")[:USER_AGENT_MAX] or None,
        id_token=id_token,
        claims=claims,
        stream_key_hash=hash_token(stream_key_for(token)),
    )
    return StartedSession(token, session_id, expires_at, csrf_token_for(token))


async def end_session(token: str) -> bool:
    """Logout: the row is gone, and no request after the answer finds it in a cache. An
    unknown token ends nothing and announces nothing."""
    async with change_transaction():
        ended = await queries.delete_session(hash_token(token))
        if ended:
            sessions_changed()
    return ended


async def end_user_sessions(user_id: int) -> int:
    """Every session of the user, on every replica: the rows are gone. How many there were."""
    async with change_transaction():
        ended = await queries.delete_user_sessions(user_id)
        if ended:
            sessions_changed()
    return ended


# ---- logins in flight ----------------------------------------------------------------------


async def save_login_state(
    *, state: str, browser_binding: str, nonce: str, code_verifier: str, next_url: str
) -> None:
    """Keep a login in flight for LOGIN_STATE_TTL (hashes of the state and the binding only),
    and drop those abandoned more than an hour ago."""
    now = datetime.now(UTC)
    async with change_transaction():
        await queries.delete_login_states_expired_before(now - timedelta(hours=1))
        await queries.insert_login_state(
            state_hash=hash_token(state),
            browser_binding_hash=hash_token(browser_binding),
            nonce=nonce,
            code_verifier=code_verifier,
            next_url=next_url,
            expires_at=now + LOGIN_STATE_TTL,
        )


async def consume_login_state(state: str, browser_binding: str) -> dict[str, Any] | None:
    """The unexpired login this browser started with `state`, used up by this call (one
    DELETE, so a state and its code serve once); None otherwise."""
    login = await queries.take_login_state(hash_token(state), hash_token(browser_binding))
    if login is None or login["expires_at"] < datetime.now(UTC):
        return None
    return login


# ---- provisioning --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProvisionedUser:
    user_id: int
    email: str | None
    is_active: bool
    is_super_admin: bool
    created: bool


async def _take_address(email: str, issuer: str, subject: str) -> None:
    """A verified login owns its address: release it from any other row (audited)."""
    for user_id in await queries.release_address(email, issuer, subject):
        await record_audit(
            action="user.email_released",
            resource_type="user",
            resource_id=user_id,
            actor=None,
            before={"email": email},
            after={"email": None, "taken_by": {"issuer": issuer, "subject": subject}},
        )


async def _organization_for(email: str | None, settings: Settings) -> int | None:
    """Only a verified address may place a user in the organization claiming its domain."""
    if email:
        claimed = await queries.organization_claiming(email.rsplit("@", 1)[1])
        if claimed is not None:
            return claimed
    if settings.default_organization:
        return await queries.organization_by_slug(settings.default_organization)
    return None


async def provision_user(identity: Identity, settings: Settings) -> ProvisionedUser:
    """Create or refresh the user for verified claims, in one transaction (the login's,
    when called from `sign_in`).

    `identity` was checked whole (`api.auth.rules`): every value is stored as it is."""
    email, subject = identity.email, identity.subject
    async with change_transaction():
        if email is not None:
            await _take_address(email, settings.oidc_issuer, subject)
        try:
            row = await queries.upsert_user(
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
                await queries.insert_member(user.user_id, organization, Role.viewer)
                await record_audit(
                    action="assignment.created",
                    resource_type="assignment",
                    resource_id=f"{user.user_id}@{organization}",
                    actor=actor,
                    after={"node_id": organization, "role": "viewer", "source": "provisioning"},
                )
        if email and not user.is_super_admin and await queries.take_pending_grant(email):
            await queries.set_super_admin(user.user_id, True)
            await record_audit(
                action="super_admin.linked",
                resource_type="user",
                resource_id=user.user_id,
                actor=actor,
                before={"is_super_admin": False},
                after={"is_super_admin": True, "email": email},
            )
            sessions_changed()  # the user's other sessions, cached as not a super-admin
            user = ProvisionedUser(user.user_id, email, user.is_active, True, user.created)
    return user


async def sign_in(
    identity: Identity,
    settings: Settings,
    *,
    client_ip: str | None,
    user_agent: str | None,
    id_token: str,
    claims: dict[str, Any],
) -> tuple[ProvisionedUser, StartedSession]:
    """A verified login: the user provisioned and a fresh session started, in one
    transaction; a deactivated account gets 403 and nothing is written."""
    async with change_transaction():
        user = await provision_user(identity, settings)
        if not user.is_active:
            raise Forbidden("This account is deactivated", extra={"reason": "account_disabled"})
        session = await start_session(
            user.user_id,
            settings,
            client_ip=client_ip,
            user_agent=user_agent,
            id_token=id_token,
            claims=claims,
        )
    return user, session


# ---- super-admins --------------------------------------------------------------------------


class Grant(StrEnum):
    """What a super-admin grant did."""

    granted = "granted"
    already = "already"
    """The address's user already is a super-admin: nothing written."""
    pending = "pending"
    """No verified user has the address yet: the grant waits for their first login."""
    already_pending = "already_pending"


async def _audit_grant(action: str, email: str, user_id: int | None, by: str, now: bool) -> None:
    await record_audit(
        action=action,
        resource_type="user" if user_id else "super_admin_grant",
        resource_id=user_id or email,
        actor=None,
        before={"is_super_admin": not now, "email": email},
        after={"is_super_admin": now, "email": email, "by": by},
    )


async def grant_super_admin(email: str, by: str) -> Grant:
    """Make the user whose verified e-mail this is a super-admin, or keep the grant for their
    first verified login; audited as `by` (e.g. `cli:alice`), announced to session caches."""
    email = grantable_email(email)
    async with change_transaction():
        user = await queries.lock_user_by_verified_email(email)
        if user is not None:
            if user["is_super_admin"]:
                return Grant.already
            await queries.set_super_admin(user["id"], True)
            await _audit_grant("super_admin.granted", email, user["id"], by, True)
            sessions_changed()
            return Grant.granted
        if not await queries.add_pending_grant(email, by):
            return Grant.already_pending
        await _audit_grant("super_admin.granted_pending", email, None, by, True)
        return Grant.pending


async def revoke_super_admin(email: str, by: str) -> bool:
    """Take super-admin from the address's user and drop any grant waiting for it; whether
    there was anything to revoke (if not, nothing is written). Any address is looked up, so
    a grant made before `grantable_email` existed can be revoked too."""
    email = email.strip().lower()
    async with change_transaction():
        pending = await queries.take_pending_grant(email)
        users = await queries.lock_super_admins_by_email(email)
        for user_id in users:
            await queries.set_super_admin(user_id, False)
        if not users and not pending:
            return False
        await _audit_grant("super_admin.revoked", email, users[0] if users else None, by, False)
        if users:
            sessions_changed()
    return True
