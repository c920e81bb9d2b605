"""Environment → one frozen, validated settings object (PRODUCT §6).

Bad or missing configuration raises `SettingsError` naming the variable; the entry points
print that one line and exit, so nothing half-configured ever serves (F6, F7).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from litestar import Litestar
from litestar.connection import ASGIConnection

SameSite = Literal["lax", "strict", "none"]
Environment = Literal["development", "production"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(Exception):
    """A configuration problem, worded as one line that names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    environment: Environment
    """`development` logs readable lines; anything else logs JSON."""
    database_url: str | None
    """Postgres URL; `None` selects the embedded development/test server."""
    oidc_issuer: str
    """The OpenID Provider's issuer, exactly as its discovery document states it."""
    oidc_client_id: str
    """This relying party's client id at the provider."""
    oidc_client_secret: str
    """The client secret used for the authorization-code exchange."""
    oidc_audience: str | None
    """Audience required of bearer access tokens; `None` refuses bearer tokens."""
    public_url: str
    """Where browsers reach this API; the OIDC redirect URI is built from it."""
    frontend_origins: tuple[str, ...]
    """Origins allowed for CORS, CSRF `Origin` checks and post-login `next` redirects."""
    session_cookie_samesite: SameSite
    """`lax` for a same-site front end, `none` for a cross-site one (needs https)."""
    session_idle_minutes: int
    """A session unused this long ends."""
    session_max_hours: int
    """A session ends this long after login, however busy."""
    default_organization: str | None
    """Slug of the organization new users join as viewers when no e-mail domain matches."""
    trusted_proxies: tuple[Network, ...] = field(default=())
    """Peers whose `X-Forwarded-For` is believed when finding the client IP."""
    max_request_body_bytes: int = 1_048_576
    """Request bodies larger than this are refused with 413 before anything reads them."""
    max_json_depth: int = 32
    """Bodies nested deeper than this (arrays/objects) are refused with 400 before parsing."""
    database_direct_url: str | None = None
    """A direct (unpooled) Postgres URL for session-level features: the change listener's
    LISTEN and the release step's advisory lock. Set it when `DATABASE_URL` points at a
    transaction-pooling PgBouncer; then `DATABASE_URL`'s connections skip prepared-statement
    caching and startup parameters the pooler refuses."""

    auth_rate_limit_per_minute: int = 60
    """Login/callback/logout requests allowed per client address and minute."""
    db_pool_size: int = 10
    """Most connections this process opens to `DATABASE_URL`."""
    log_level: str = "INFO"
    """Root log level; above INFO the access lines are off too."""
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    """Address `python -m api.ops.serve` listens on."""
    port: int = 8000
    """Port `python -m api.ops.serve` listens on."""
    web_concurrency: int = 1
    """uvicorn worker processes of `python -m api.ops.serve`."""
    scheduler_interval: float = 5.0
    """Seconds between two looks for due scheduled flag changes (every process looks)."""
    usage_flush_seconds: float = 10.0
    """Seconds between two writes of this process's counted flag evaluations."""
    max_header_bytes: int = 16_384
    """A request line plus headers larger than this is refused with 431 (browsers send ~1 KiB)."""
    header_timeout_seconds: float = 10.0
    """A request whose line and headers take longer than this to arrive gets 408 and is closed."""
    body_timeout_seconds: float = 15.0
    """A connection whose request body stops arriving for this long is closed."""
    keep_alive_seconds: float = 5.0
    """An idle keep-alive connection is closed after this long."""
    max_connections: int = 1_000
    """Connections (or running requests) served at once per process; beyond, 503 + Retry-After."""
    event_streams_max: int = 500
    """OFREP event streams open at once per process; beyond, 503 + Retry-After (the web
    provider then polls). Each open stream also holds one of MAX_CONNECTIONS, so it is
    below that (half of it by default)."""
    event_stream_heartbeat_seconds: float = 15.0
    """A comment line on each idle event stream this often (keep proxies' read timeout above)."""
    service_clients: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    """Machine clients (client-credentials tokens) allowed in, each with the scopes it may
    use (`SERVICE_CLIENT_IDS`); a client not named here gets 401."""
    metrics_token: str | None = None
    """Bearer token a Prometheus scrape of `/metrics` must send; unset, `/metrics` is open in
    development and 404 in production."""
    otlp_endpoint: str | None = None
    """`OTEL_EXPORTER_OTLP_ENDPOINT`: where traces go over OTLP/HTTP (`/v1/traces` appended,
    as the OpenTelemetry SDK does); unset, nothing is traced (api/platform/tracing.py)."""

    @property
    def through_pooler(self) -> bool:
        """`DATABASE_URL` leads to a transaction pooler (a direct URL is configured)."""
        return self.database_direct_url is not None

    @property
    def public_url_is_https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """The API's own origin plus the configured front ends."""
        return (self.public_origin, *self.frontend_origins)


def _origin(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise SettingsError(f"{name}: {value!r} is not an origin like https://app.example.com")
    return f"{parts.scheme}://{parts.netloc}"


def _url(env: Mapping[str, str], name: str) -> str:
    value = _required(env, name)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name}: {value!r} is not an http(s) URL")
    return value


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required but not set")
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _event_streams_max(env: Mapping[str, str], max_connections: int) -> int:
    """Each open stream holds one of MAX_CONNECTIONS for as long as it lives: streams get
    half by default, and never all of them, so that requests always find room."""
    streams = _positive_int(env, "EVENT_STREAMS_MAX", max_connections // 2)
    if streams >= max_connections:
        raise SettingsError(
            f"EVENT_STREAMS_MAX: {streams} must be below MAX_CONNECTIONS ({max_connections}),"
            " since every open stream holds a connection"
        )
    return streams


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a whole number") from None
    if value <= 0:
        raise SettingsError(f"{name}: must be greater than 0, got {value}")
    return value


def _positive_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{name}: must be a positive number of seconds, got {raw}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    networks = []
    for item in filter(None, (part.strip() for part in env.get(name, "").split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {item!r} is not an IP address or CIDR network") from None
    return tuple(networks)


_CLIENT_ID = re.compile(r"[A-Za-z0-9._:~-]{1,255}")
_SCOPE = re.compile(r"[\x21\x23-\x2b\x2d-\x3c\x3e-\x5b\x5d-\x7e]{1,255}")
"""An RFC 6749 scope-token without the `,` and `=` this syntax separates with."""


def _service_clients(env: Mapping[str, str], name: str) -> Mapping[str, frozenset[str]]:
    """`client=scope scope,other=scope`: comma-separated clients, each `=` its scopes,
    space-separated. Strict: an empty entry, a client twice or without scopes is an error."""
    raw = env.get(name, "").strip()
    clients: dict[str, frozenset[str]] = {}
    for entry in raw.split(",") if raw else ():
        if not entry.strip():
            raise SettingsError(f"{name}: an entry is empty (a stray comma?)")
        client, equals, scopes = (part.strip() for part in entry.partition("="))
        if not equals:
            raise SettingsError(
                f"{name}: {entry.strip()!r} has no '=' (write client-id=scope scope,other=scope)"
            )
        if not _CLIENT_ID.fullmatch(client):
            raise SettingsError(
                f"{name}: {client!r} is not a client id (letters, digits and . _ : ~ -)"
            )
        if client in clients:
            raise SettingsError(f"{name}: client {client!r} is listed twice")
        granted = scopes.split()
        if not granted:
            raise SettingsError(f"{name}: client {client!r} lists no scopes")
        for scope in granted:
            if not _SCOPE.fullmatch(scope):
                raise SettingsError(f"{name}: {scope!r} (client {client!r}) is not a scope")
        clients[client] = frozenset(granted)
    return MappingProxyType(clients)


METRICS_TOKEN_BYTES = (16, 512)
"""A scrape token's length: long enough not to be guessed, short enough for any header."""
_TOKEN = re.compile(r"[\x21-\x7e]+")


def _metrics_token(env: Mapping[str, str]) -> str | None:
    token = _optional(env, "METRICS_TOKEN")
    if token is None:
        return None
    shortest, longest = METRICS_TOKEN_BYTES
    if not shortest <= len(token) <= longest or not _TOKEN.fullmatch(token):
        raise SettingsError(
            f"METRICS_TOKEN: must be {shortest} to {longest} printable ASCII characters"
            " without spaces (openssl rand -hex 32 makes one)"
        )
    return token


OTLP_ENDPOINT_MAX_CHARS = 2_048


def _otlp_endpoint(env: Mapping[str, str]) -> str | None:
    """An http(s) base URL without query or fragment: the exporter appends `/v1/traces`, so
    anything after the path would be sent to the wrong place, silently, for every batch."""
    value = _optional(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if value is None:
        return None
    parts = urlsplit(value)
    if (
        len(value) > OTLP_ENDPOINT_MAX_CHARS
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
    ):
        raise SettingsError(
            f"OTEL_EXPORTER_OTLP_ENDPOINT: {value[:100]!r} is not an http(s) URL such as"
            f" http://otel-collector:4318 (no query, at most {OTLP_ENDPOINT_MAX_CHARS} characters)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise SettingsError(
            f"OTEL_EXPORTER_OTLP_ENDPOINT: {value[:100]!r} has a port out of range"
        ) from None
    return value


def _log_level(env: Mapping[str, str]) -> str:
    level = (env.get("LOG_LEVEL", "").strip() or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"LOG_LEVEL: {level!r} must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """The part of the configuration every process needs: where the database is. The release
    step and the command-line tools load only this, so they hold no web or OIDC secret."""

    database_url: str | None
    """Postgres URL; `None` selects the embedded development/test server."""
    database_direct_url: str | None = None
    """A direct (unpooled) Postgres URL for session-level features (see `Settings`)."""
    db_pool_size: int = 10
    """Most connections this process opens to `DATABASE_URL`."""

    @property
    def through_pooler(self) -> bool:
        """`DATABASE_URL` leads to a transaction pooler (a direct URL is configured)."""
        return self.database_direct_url is not None


def load_database_settings(env: Mapping[str, str] | None = None) -> DatabaseSettings:
    """`DATABASE_URL`, `DATABASE_DIRECT_URL` and `DB_POOL_SIZE`, validated; nothing else is read."""
    env = os.environ if env is None else env
    database_url = _optional(env, "DATABASE_URL")
    if database_url and urlsplit(database_url).scheme not in ("postgres", "postgresql"):
        raise SettingsError("DATABASE_URL: must be a postgres:// or postgresql:// URL")
    direct_url = _optional(env, "DATABASE_DIRECT_URL")
    if direct_url and urlsplit(direct_url).scheme not in ("postgres", "postgresql"):
        raise SettingsError("DATABASE_DIRECT_URL: must be a postgres:// or postgresql:// URL")
    if direct_url and database_url is None:
        raise SettingsError("DATABASE_DIRECT_URL: set DATABASE_URL (the pooler's URL) too")
    if database_url is None and importlib.util.find_spec("pgserver") is None:
        raise SettingsError(
            "DATABASE_URL is required (the embedded Postgres is for development and not installed)"
        )
    return DatabaseSettings(
        database_url=database_url,
        database_direct_url=direct_url,
        db_pool_size=_positive_int(env, "DB_POOL_SIZE", 10),
    )


def load_oidc_issuer(env: Mapping[str, str] | None = None) -> str:
    """`OIDC_ISSUER` alone, for a process that keys users to the provider without talking to
    it (the demo data): it needs no client id, secret or public URL."""
    return _url(os.environ if env is None else env, "OIDC_ISSUER")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the configuration; raises `SettingsError` on the first problem."""
    env = os.environ if env is None else env
    environment = env.get("APP_ENV", "production").strip() or "production"
    if environment not in ("development", "production"):
        raise SettingsError(f"APP_ENV: {environment!r} must be 'development' or 'production'")
    database = load_database_settings(env)
    public_url = _url(env, "PUBLIC_URL").rstrip("/")
    samesite = (env.get("SESSION_COOKIE_SAMESITE", "").strip() or "lax").lower()
    if samesite not in ("lax", "strict", "none"):
        raise SettingsError(
            f"SESSION_COOKIE_SAMESITE: {samesite!r} must be one of lax, strict, none"
        )
    if samesite == "none" and not public_url.startswith("https://"):
        raise SettingsError("SESSION_COOKIE_SAMESITE: 'none' needs an https PUBLIC_URL")
    if env.get("OIDC_AUDIENCE", "").strip() == env.get("OIDC_CLIENT_ID", "").strip() != "":
        raise SettingsError("OIDC_AUDIENCE: must differ from OIDC_CLIENT_ID (ID tokens name it)")
    frontends = tuple(
        _origin(item, "FRONTEND_ORIGINS")
        for item in filter(None, (p.strip() for p in env.get("FRONTEND_ORIGINS", "").split(",")))
    )
    return Settings(
        environment=environment,  # type: ignore[arg-type]
        database_url=database.database_url,
        oidc_issuer=load_oidc_issuer(env),
        oidc_client_id=_required(env, "OIDC_CLIENT_ID"),
        oidc_client_secret=_required(env, "OIDC_CLIENT_SECRET"),
        oidc_audience=_optional(env, "OIDC_AUDIENCE"),
        public_url=public_url,
        frontend_origins=frontends,
        session_cookie_samesite=samesite,  # type: ignore[arg-type]
        session_idle_minutes=_positive_int(env, "SESSION_IDLE_MINUTES", 60),
        session_max_hours=_positive_int(env, "SESSION_MAX_HOURS", 24),
        default_organization=_optional(env, "DEFAULT_ORGANIZATION"),
        trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
        max_request_body_bytes=_positive_int(env, "MAX_REQUEST_BODY_BYTES", 1_048_576),
        max_json_depth=_positive_int(env, "MAX_JSON_DEPTH", 32),
        database_direct_url=database.database_direct_url,
        auth_rate_limit_per_minute=_positive_int(env, "AUTH_RATE_LIMIT_PER_MINUTE", 60),
        db_pool_size=database.db_pool_size,
        log_level=_log_level(env),
        host=env.get("HOST", "").strip() or "0.0.0.0",  # noqa: S104
        port=_positive_int(env, "PORT", 8000),
        web_concurrency=_positive_int(env, "WEB_CONCURRENCY", 1),
        scheduler_interval=_positive_seconds(env, "SCHEDULER_INTERVAL", 5.0),
        usage_flush_seconds=_positive_seconds(env, "USAGE_FLUSH_SECONDS", 10.0),
        max_header_bytes=_positive_int(env, "MAX_HEADER_BYTES", 16_384),
        header_timeout_seconds=_positive_seconds(env, "HEADER_TIMEOUT_SECONDS", 10.0),
        body_timeout_seconds=_positive_seconds(env, "BODY_TIMEOUT_SECONDS", 15.0),
        keep_alive_seconds=_positive_seconds(env, "KEEP_ALIVE_SECONDS", 5.0),
        max_connections=(max_connections := _positive_int(env, "MAX_CONNECTIONS", 1_000)),
        event_streams_max=_event_streams_max(env, max_connections),
        event_stream_heartbeat_seconds=_positive_seconds(
            env, "EVENT_STREAM_HEARTBEAT_SECONDS", 15.0
        ),
        service_clients=_service_clients(env, "SERVICE_CLIENT_IDS"),
        metrics_token=_metrics_token(env),
        otlp_endpoint=_otlp_endpoint(env),
    )


@cache
def get_settings() -> Settings:
    """The process's settings from its environment, read once: for entry points and code
    that runs outside any app (commands, `create_app()`'s default). Code serving a request
    or an app's lifespan uses `settings_of`."""
    return load_settings()


SETTINGS_STATE = "settings"
"""The app state key `create_app` keeps its settings under; read it through `settings_of`."""


def settings_of(where: ASGIConnection[Any, Any, Any, Any] | Litestar) -> Settings:
    """The one accessor for request-time code: the settings of the app serving this request
    (or of this app, in its lifespan hooks). Tests build apps with their own settings."""
    app = where if isinstance(where, Litestar) else where.app
    settings: Settings = app.state[SETTINGS_STATE]
    return settings
