"""Maps our sessions onto Piccolo Admin's user table, for super-admins only."""

from __future__ import annotations

import secrets

from api.auth.sessions import load_session
from api.platform.config import get_settings
from tables.admin import AdminUser

_admin_ids: dict[int, int] = {}


async def admin_user_id(user_id: int, email: str | None) -> int:
    """The AdminUser row mirroring super-admin `user_id`, created on first use.

    Its username is what the admin's menu shows, so it is the person's e-mail; rows made
    before that was so (`oidc-user-<id>`) are renamed on first use."""
    if user_id in _admin_ids:
        return _admin_ids[user_id]
    legacy = f"oidc-user-{user_id}"
    username = (email or legacy)[:100]
    rows = await AdminUser.select(AdminUser.id, AdminUser.username).where(
        AdminUser.username.is_in([username, legacy])
    )
    rows.sort(key=lambda row: row["username"] != username)  # the current name first
    if rows:
        admin_id = int(rows[0]["id"])
        if rows[0]["username"] != username:
            await AdminUser.update({AdminUser.username: username}).where(AdminUser.id == admin_id)
    else:
        # A real hash of a secret nobody knows; login() is disabled anyway.
        user = await AdminUser.create_user(
            username=username,
            password=secrets.token_urlsafe(48),
            email=email or f"{legacy}@invalid",
            active=True,
            admin=True,
            superuser=True,
        )
        admin_id = int(user.id)
    _admin_ids[user_id] = admin_id
    return admin_id


async def admin_user_for_session(token: str) -> int | None:
    """Piccolo Admin's session lookup: only a live session of an active super-admin."""
    caller = await load_session(token, get_settings())
    if caller is None or not caller.is_super_admin:
        return None
    return await admin_user_id(caller.user_id, caller.email)
