"""The typed bodies of the auth routes (PRODUCT §4). The login and callback answer with
redirects and take only query parameters, so they have none here."""

from __future__ import annotations

from datetime import datetime

import msgspec


class AuthConfig(msgspec.Struct):
    issuer: str
    client_id: str
    login_url: str
    logout_url: str
    session_check_url: str


class SessionCheck(msgspec.Struct, omit_defaults=True):
    authenticated: bool
    user_id: int | None = None
    email: str | None = None
    is_super_admin: bool | None = None
    expires_at: datetime | None = None
    csrf_token: str | None = None


class LogoutResult(msgspec.Struct):
    logged_out: bool
    end_session_url: str | None
