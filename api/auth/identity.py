"""Who calls: a person (`Caller`) or a machine client (`ServiceCaller`).

The sessions and bearer modules produce these; `api.auth.identification` picks which one
applies to a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: int
    email: str | None
    is_super_admin: bool
    via: Literal["session", "bearer"]
    session_id: int | None = None
    csrf_token: str | None = None
    expires_at: datetime | None = None
    stream_key: str | None = None
    """The session's OFREP event-stream key (api/flags/streams.py), if it has one."""


@dataclass(frozen=True, slots=True)
class ServiceCaller:
    """A machine client holding a bearer token issued to it, not to a person: one named in
    SERVICE_CLIENT_IDS, with the scopes both the token and that list grant it."""

    client_id: str
    scopes: frozenset[str] = frozenset()
