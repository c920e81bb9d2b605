"""Server-side login state: browser sessions and in-flight OIDC logins (PRODUCT §5).

Only SHA-256 hashes of the cookie tokens are stored, so a database leak yields no session.
"""

from piccolo.columns import JSONB, ForeignKey, OnDelete, Serial, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.readable import Readable
from piccolo.table import Table

from tables.users import User


class UserSession(Table, tablename="user_sessions"):
    id = Serial(primary_key=True)
    token_hash = Varchar(length=64, null=False, unique=True)
    user_id = ForeignKey(User, null=False, on_delete=OnDelete.cascade, index=True)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    last_seen_at = Timestamptz(default=TimestamptzNow(), null=False)
    expires_at = Timestamptz(null=False)
    client_ip = Varchar(length=64, null=True, default=None)
    user_agent = Varchar(length=500, null=True, default=None)
    id_token = Text(null=True, default=None)
    claims = JSONB(null=True, default=None)
    stream_key_hash = Varchar(length=64, null=True, default=None, unique=True)
    """SHA-256 of the session's OFREP event-stream key (api/flags/streams.py): the stream URL
    carries the key, so the row, not the key, says whether the stream may stay open."""

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="session of %s", columns=[cls.user_id.email])


class OidcLoginState(Table, tablename="oidc_login_states"):
    """One row per login in flight; deleted when the callback consumes it (single use)."""

    id = Serial(primary_key=True)
    state_hash = Varchar(length=64, null=False, unique=True)
    browser_binding_hash = Varchar(length=64, null=False)
    nonce = Varchar(length=128, null=False)
    code_verifier = Varchar(length=128, null=False)
    next_url = Varchar(length=2000, null=False, default="/")
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    expires_at = Timestamptz(null=False, index=True)

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="login started %s", columns=[cls.created_at])
