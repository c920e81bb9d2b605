"""Create users and sessions directly, for tests that are not about the login itself."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

from api.auth.service import start_session
from api.auth.sessions import cookie_name
from api.platform.config import get_settings
from tables.users import User

_counter = itertools.count()


@dataclass(frozen=True)
class SignedIn:
    user_id: int
    email: str
    token: str
    csrf_token: str

    @property
    def cookies(self) -> dict[str, str]:
        return {cookie_name(get_settings()): self.token}

    def headers(self, origin: str = "http://127.0.0.1:8000") -> dict[str, str]:
        """Headers an unsafe request from the front end carries."""
        return {"X-CSRF-Token": self.csrf_token, "Origin": origin}


async def make_user(*, super_admin: bool = False, email: str | None = None) -> int:
    unique = f"{next(_counter)}-{uuid.uuid4().hex[:8]}"
    user = User(
        oidc_issuer="http://issuer.test/",
        oidc_subject=f"subject-{unique}",
        email=email or f"user-{unique}@example.test",
        email_verified=True,  # as a verified login leaves it
        name=f"Test User {unique}",
        is_super_admin=super_admin,
    )
    await user.save()
    return int(user.id)


async def sign_in(user_id: int | None = None, *, super_admin: bool = False) -> SignedIn:
    if user_id is None:
        user_id = await make_user(super_admin=super_admin)
    user = await User.objects().get(User.id == user_id)
    assert user is not None
    started = await start_session(user_id, get_settings())
    return SignedIn(user_id, str(user.email), started.token, started.csrf_token)
