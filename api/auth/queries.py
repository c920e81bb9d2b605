"""Every read and write of the auth domain's tables: sessions, logins in flight, the users a
login provisions and super-admin grants. The protocol modules and `api.auth.service` call
these; nothing else in api/auth/ holds SQL or builder calls (tests/unit/test_layout.py).

Raw SQL is kept where the builder cannot say it in one round trip: the session lookup
joins the user and compares times in the database's clock, and the login's upsert tells a
first login from a returning one (`xmax = 0`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from api.platform.db.sql import fetch
from tables.enums import NodeLevel, Role
from tables.hierarchy import HierarchyNode, UserHierarchyAssignment
from tables.sessions import OidcLoginState
from tables.users import SuperAdminGrant, User

# ---- sessions ------------------------------------------------------------------------------

INSERT_SESSION = (
    "INSERT INTO user_sessions"
    " (token_hash, user_id, expires_at, client_ip, user_agent, id_token, claims,"
    " stream_key_hash) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8) RETURNING id"
)
SESSION_QUERY = (
    "SELECT s.id, s.token_hash, s.user_id, s.expires_at, s.last_seen_at, u.email,"
    " u.is_super_admin, s.stream_key_hash IS NOT NULL AS has_stream_key"
    " FROM user_sessions s JOIN users u ON u.id = s.user_id"
    " WHERE s.token_hash = ANY($1::text[]) AND s.expires_at > now()"
    " AND s.last_seen_at > now() - make_interval(mins => $2) AND u.is_active"
)
"""Validity (idle and absolute expiry, active user) in the query that loads the session."""
LIVE_SESSION = (
    " FROM user_sessions s JOIN users u ON u.id = s.user_id WHERE s.expires_at > now()"
    " AND s.last_seen_at > now() - make_interval(mins => $2) AND u.is_active"
)
STREAM_SESSION = (
    "SELECT s.id, s.user_id, u.email, u.is_super_admin, s.expires_at"
    + LIVE_SESSION
    + " AND s.stream_key_hash = $1"
)
LIVE_SESSION_IDS = "SELECT s.id, u.is_super_admin" + LIVE_SESSION + " AND s.id = ANY($1::int[])"
"""The same validity as SESSION_QUERY, for event streams (by stream key, or re-checked by id)."""
TOUCH_SESSIONS = (
    "UPDATE user_sessions SET last_seen_at = now()"
    " WHERE id = ANY($1::int[]) AND last_seen_at < now() - make_interval(secs => $2)"
)
"""The condition repeats in SQL so that replicas racing on one session write once."""
END_SESSION = "DELETE FROM user_sessions WHERE token_hash = $1 RETURNING id"
END_USER_SESSIONS = "DELETE FROM user_sessions WHERE user_id = $1 RETURNING id"
LOGOUT_HINT = "SELECT id_token FROM user_sessions WHERE token_hash = $1"


async def insert_session(
    token_hash: str,
    user_id: int,
    expires_at: datetime,
    *,
    client_ip: str | None,
    user_agent: str | None,
    id_token: str | None,
    claims: dict[str, Any] | None,
    stream_key_hash: str | None = None,
) -> int:
    rows = await fetch(
        INSERT_SESSION,
        token_hash,
        user_id,
        expires_at,
        client_ip,
        user_agent,
        id_token,
        json.dumps(claims) if claims is not None else None,
        stream_key_hash,
    )
    return int(rows[0]["id"])


async def stream_session(stream_key_hash: str, idle_minutes: int) -> dict[str, Any] | None:
    """The live session whose event-stream key has this hash, with its user's role."""
    rows = await fetch(STREAM_SESSION, stream_key_hash, idle_minutes)
    return dict(rows[0]) if rows else None


async def live_session_roles(session_ids: Sequence[int], idle_minutes: int) -> dict[int, bool]:
    """Which of `session_ids` are still live, each with whether its user is a super-admin."""
    rows = await fetch(LIVE_SESSION_IDS, list(session_ids), idle_minutes)
    return {row["id"]: row["is_super_admin"] for row in rows}


async def live_sessions(token_hashes: Sequence[str], idle_minutes: int) -> list[Any]:
    """The live sessions among `token_hashes`, each with its user's e-mail and role."""
    return await fetch(SESSION_QUERY, list(token_hashes), idle_minutes)


async def touch_sessions(session_ids: Sequence[int], interval: timedelta) -> None:
    """`last_seen_at = now()` for those of `session_ids` not seen for `interval`."""
    await fetch(TOUCH_SESSIONS, list(session_ids), interval.total_seconds())


async def delete_session(token_hash: str) -> bool:
    """Whether a session had this token (it is gone now)."""
    return bool(await fetch(END_SESSION, token_hash))


async def delete_user_sessions(user_id: int) -> int:
    """How many sessions the user had (all gone now)."""
    return len(await fetch(END_USER_SESSIONS, user_id))


async def session_id_token(token_hash: str) -> str | None:
    rows = await fetch(LOGOUT_HINT, token_hash)
    return rows[0]["id_token"] if rows else None


# ---- logins in flight ----------------------------------------------------------------------


async def insert_login_state(
    *,
    state_hash: str,
    browser_binding_hash: str,
    nonce: str,
    code_verifier: str,
    next_url: str,
    expires_at: datetime,
) -> None:
    await OidcLoginState.insert(
        OidcLoginState(
            state_hash=state_hash,
            browser_binding_hash=browser_binding_hash,
            nonce=nonce,
            code_verifier=code_verifier,
            next_url=next_url,
            expires_at=expires_at,
        )
    )


async def delete_login_states_expired_before(moment: datetime) -> None:
    await OidcLoginState.delete().where(OidcLoginState.expires_at < moment)


async def take_login_state(state_hash: str, browser_binding_hash: str) -> dict[str, Any] | None:
    """The login started with this state in this browser, deleted in the same statement (so
    a state is used once); None if there is none."""
    rows = (
        await OidcLoginState.delete()
        .where(
            OidcLoginState.state_hash == state_hash,
            OidcLoginState.browser_binding_hash == browser_binding_hash,
        )
        .returning(
            OidcLoginState.nonce,
            OidcLoginState.code_verifier,
            OidcLoginState.next_url,
            OidcLoginState.expires_at,
        )
    )
    return dict(rows[0]) if rows else None


# ---- users a login provisions --------------------------------------------------------------

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


async def upsert_user(
    issuer: str,
    subject: str,
    email: str | None,
    name: str,
    given_name: str,
    family_name: str,
) -> dict[str, Any]:
    """The user keyed (issuer, subject), created or refreshed; raises asyncpg's
    UniqueViolationError when another row holds `email`."""
    rows = await fetch(UPSERT_USER, issuer, subject, email, name, given_name, family_name)
    return dict(rows[0])


async def release_address(email: str, issuer: str, subject: str) -> list[int]:
    """Clear `email` from every user other than (issuer, subject); their ids."""
    released = (
        await User.update({User.email: None, User.updated_at: datetime.now(UTC)})
        .where(User.email == email)
        .where((User.oidc_issuer != issuer) | (User.oidc_subject != subject))
        .returning(User.id)
    )
    return [int(row["id"]) for row in released]


def _active_organizations() -> Any:
    return HierarchyNode.select(HierarchyNode.id).where(
        HierarchyNode.level == NodeLevel.organization.value, HierarchyNode.is_active.eq(True)
    )


async def organization_claiming(domain: str) -> int | None:
    """The (first) active organization that claims the e-mail domain."""
    row = await (
        _active_organizations()
        .where(HierarchyNode.email_domains.any(domain))
        .order_by(HierarchyNode.id)
        .first()
    )
    return None if row is None else int(row["id"])


async def organization_by_slug(slug: str) -> int | None:
    """The active top-level organization with this slug."""
    row = await (
        _active_organizations()
        .where(HierarchyNode.parent_id.is_null(), HierarchyNode.slug == slug)
        .first()
    )
    return None if row is None else int(row["id"])


async def insert_member(user_id: int, organization_id: int, role: Role) -> None:
    """The user's primary assignment: `role` at the organization."""
    await UserHierarchyAssignment.insert(
        UserHierarchyAssignment(
            user_id=user_id, node_id=organization_id, role=role.value, is_primary=True
        )
    )


# ---- super-admins --------------------------------------------------------------------------


async def lock_user_by_verified_email(email: str) -> dict[str, Any] | None:
    """The user whose verified e-mail this is, locked for the transaction."""
    row = (
        await User.select(User.id, User.is_super_admin)
        .where((User.email == email) & (User.email_verified.eq(True)))
        .lock_rows()
        .first()
    )
    return None if row is None else dict(row)


async def lock_super_admins_by_email(email: str) -> list[int]:
    """The super-admins holding this e-mail (at most one), locked for the transaction."""
    rows = await (
        User.select(User.id).where(User.email == email, User.is_super_admin.eq(True)).lock_rows()
    )
    return [int(row["id"]) for row in rows]


async def set_super_admin(user_id: int, value: bool) -> None:
    await User.update({User.is_super_admin: value, User.updated_at: datetime.now(UTC)}).where(
        User.id == user_id
    )


async def add_pending_grant(email: str, granted_by: str) -> bool:
    """Whether a new grant was recorded (False: one already waits for this address)."""
    rows = (
        await SuperAdminGrant.insert(SuperAdminGrant(email=email, granted_by=granted_by))
        .on_conflict(target=SuperAdminGrant.email, action="DO NOTHING")
        .returning(SuperAdminGrant.id)
    )
    return bool(rows)


async def take_pending_grant(email: str) -> bool:
    """Whether a grant waited for this address (it is used up now)."""
    rows = (
        await SuperAdminGrant.delete()
        .where(SuperAdminGrant.email == email)
        .returning(SuperAdminGrant.id)
    )
    return bool(rows)


async def super_admin_emails() -> list[str]:
    rows = await User.select(User.email).where(User.is_super_admin.eq(True)).order_by(User.email)
    return [str(row["email"]) for row in rows]


async def pending_grant_emails() -> list[str]:
    rows = await SuperAdminGrant.select(SuperAdminGrant.email).order_by(SuperAdminGrant.email)
    return [str(row["email"]) for row in rows]


# ---- bearer tokens -------------------------------------------------------------------------


async def active_user_by_subject(issuer: str, subject: str) -> dict[str, Any] | None:
    """The active user a person's token names, by (issuer, subject)."""
    row = (
        await User.select(User.id, User.email, User.is_super_admin)
        .where(
            User.oidc_issuer == issuer,
            User.oidc_subject == subject,
            User.is_active.eq(True),
        )
        .first()
    )
    return None if row is None else dict(row)
