"""The tables Piccolo Admin authenticates against, bridged to our OIDC sessions.

No admin passwords exist: `AdminUser.login` always fails, and each row mirrors a super-admin
of `users` (created on their first admin request). `AdminSession.get_user_id` accepts only
our own session token (the admin mount passes it in the `id` cookie it rewrites), so the
admin shares the one session mechanism: logout, demotion or deactivation end admin access
on the next request.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from piccolo.apps.user.tables import BaseUser
from piccolo_api.session_auth.tables import SessionsBase


class AdminUser(BaseUser, tablename="admin_users"):
    @classmethod
    async def login(cls, username: str, password: str) -> int | None:
        """Password login is disabled: the only way in is the OIDC login."""
        return None

    @classmethod
    def login_sync(cls, username: str, password: str) -> int | None:
        return None


class AdminSession(SessionsBase, tablename="admin_sessions"):
    @classmethod
    async def get_user_id(cls, token: str, increase_expiry: timedelta | None = None) -> int | None:
        from api.admin_ui.bridge import admin_user_for_session

        return await admin_user_for_session(token)

    @classmethod
    async def create_session(cls, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("admin sessions come from the OIDC login only")
