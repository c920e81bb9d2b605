"""Configuration (PRODUCT §6): defaults, validation, one clear line naming the variable."""

from __future__ import annotations

import ipaddress

import pytest

from api.platform.config import SettingsError, load_database_settings, load_settings

BASE = {
    "PUBLIC_URL": "https://api.example.com",
    "OIDC_ISSUER": "https://tenant.auth0.com/",
    "OIDC_CLIENT_ID": "client",
    "OIDC_CLIENT_SECRET": "secret",
    "DATABASE_URL": "postgresql://u:p@db:5432/marketedge",
}


def test_defaults_are_safe_for_a_same_site_front_end() -> None:
    settings = load_settings(BASE)
    assert settings.environment == "production"
    assert settings.session_cookie_samesite == "lax"
    assert settings.session_idle_minutes == 60
    assert settings.session_max_hours == 24
    assert settings.frontend_origins == ()
    assert settings.oidc_audience is None
    assert settings.public_url_is_https


def test_cross_site_front_end_configuration() -> None:
    settings = load_settings(
        {
            **BASE,
            "SESSION_COOKIE_SAMESITE": "None",
            "FRONTEND_ORIGINS": "https://app.example.com, https://beta.example.com/",
            "TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1",
        }
    )
    assert settings.session_cookie_samesite == "none"
    assert settings.frontend_origins == ("https://app.example.com", "https://beta.example.com")
    assert settings.allowed_origins[0] == "https://api.example.com"
    assert ipaddress.ip_address("10.1.2.3") in settings.trusted_proxies[0]


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"OIDC_ISSUER": ""}, "OIDC_ISSUER is required"),
        ({"OIDC_CLIENT_ID": " "}, "OIDC_CLIENT_ID is required"),
        ({"OIDC_CLIENT_SECRET": ""}, "OIDC_CLIENT_SECRET is required"),
        ({"PUBLIC_URL": ""}, "PUBLIC_URL is required"),
        ({"PUBLIC_URL": "api.example.com"}, "PUBLIC_URL"),
        ({"OIDC_ISSUER": "ftp://issuer"}, "OIDC_ISSUER"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"SESSION_COOKIE_SAMESITE": "sometimes"}, "SESSION_COOKIE_SAMESITE"),
        ({"SESSION_IDLE_MINUTES": "0"}, "SESSION_IDLE_MINUTES"),
        ({"SESSION_MAX_HOURS": "1.5"}, "SESSION_MAX_HOURS"),
        ({"FRONTEND_ORIGINS": "https://app.example.com/path"}, "FRONTEND_ORIGINS"),
        ({"TRUSTED_PROXIES": "not-an-ip"}, "TRUSTED_PROXIES"),
        ({"APP_ENV": "staging-ish"}, "APP_ENV"),
        (
            {"SESSION_COOKIE_SAMESITE": "none", "PUBLIC_URL": "http://api.example.com"},
            "SESSION_COOKIE_SAMESITE",
        ),
    ],
)
def test_bad_configuration_names_the_variable(overrides: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({**BASE, **overrides})
    message = str(raised.value)
    assert names in message
    assert "\n" not in message


def test_embedded_postgres_is_the_development_default() -> None:
    settings = load_settings({k: v for k, v in BASE.items() if k != "DATABASE_URL"})
    assert settings.database_url is None


def test_request_limits_have_defaults_and_come_from_the_environment() -> None:
    defaults = load_settings(BASE)
    assert (defaults.max_request_body_bytes, defaults.max_json_depth) == (1_048_576, 32)
    tuned = load_settings({**BASE, "MAX_REQUEST_BODY_BYTES": "2048", "MAX_JSON_DEPTH": "8"})
    assert (tuned.max_request_body_bytes, tuned.max_json_depth) == (2048, 8)
    with pytest.raises(SettingsError, match="MAX_JSON_DEPTH"):
        load_settings({**BASE, "MAX_JSON_DEPTH": "0"})


def test_database_settings_need_only_the_database_url() -> None:
    database = load_database_settings({"DATABASE_URL": BASE["DATABASE_URL"]})
    assert database.database_url == BASE["DATABASE_URL"]
    assert (database.database_direct_url, database.db_pool_size) == (None, 10)
    assert not database.through_pooler


def test_database_settings_behind_a_pooler_keep_the_direct_url() -> None:
    database = load_database_settings(
        {
            "DATABASE_URL": "postgresql://u:p@pgbouncer:6432/marketedge",
            "DATABASE_DIRECT_URL": BASE["DATABASE_URL"],
            "DB_POOL_SIZE": "4",
        }
    )
    assert database.through_pooler
    assert (database.database_direct_url, database.db_pool_size) == (BASE["DATABASE_URL"], 4)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"DATABASE_DIRECT_URL": BASE["DATABASE_URL"]}, "DATABASE_DIRECT_URL"),
        ({"DATABASE_URL": BASE["DATABASE_URL"], "DB_POOL_SIZE": "0"}, "DB_POOL_SIZE"),
    ],
)
def test_bad_database_settings_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        load_database_settings(env)


def test_full_settings_carry_the_same_database_settings() -> None:
    settings = load_settings({**BASE, "DATABASE_DIRECT_URL": BASE["DATABASE_URL"]})
    database = load_database_settings({**BASE, "DATABASE_DIRECT_URL": BASE["DATABASE_URL"]})
    assert (settings.database_url, settings.database_direct_url, settings.db_pool_size) == (
        database.database_url,
        database.database_direct_url,
        database.db_pool_size,
    )


def test_event_streams_take_half_the_connections_by_default_and_never_all() -> None:
    assert load_settings(BASE).event_streams_max == 500
    assert load_settings({**BASE, "MAX_CONNECTIONS": "64"}).event_streams_max == 32
    tuned = {**BASE, "MAX_CONNECTIONS": "12000", "EVENT_STREAMS_MAX": "10000"}
    assert load_settings(tuned).event_streams_max == 10_000
    for streams in ("1000", "5000", "0"):
        with pytest.raises(SettingsError, match="EVENT_STREAMS_MAX"):
            load_settings({**BASE, "EVENT_STREAMS_MAX": streams})
    with pytest.raises(SettingsError, match="EVENT_STREAM_HEARTBEAT_SECONDS"):
        load_settings({**BASE, "EVENT_STREAM_HEARTBEAT_SECONDS": "-1"})


def test_server_limits_have_safe_defaults_and_come_from_the_environment() -> None:
    defaults = load_settings(BASE)
    assert (
        defaults.max_header_bytes,
        defaults.header_timeout_seconds,
        defaults.body_timeout_seconds,
        defaults.keep_alive_seconds,
        defaults.max_connections,
    ) == (16_384, 10.0, 15.0, 5.0, 1_000)
    tuned = load_settings(
        {
            **BASE,
            "MAX_HEADER_BYTES": "32768",
            "HEADER_TIMEOUT_SECONDS": "2.5",
            "BODY_TIMEOUT_SECONDS": "30",
            "KEEP_ALIVE_SECONDS": "75",
            "MAX_CONNECTIONS": "64",
        }
    )
    assert (tuned.max_header_bytes, tuned.header_timeout_seconds, tuned.max_connections) == (
        32_768,
        2.5,
        64,
    )
    assert (tuned.body_timeout_seconds, tuned.keep_alive_seconds) == (30.0, 75.0)
    for name, bad in (("MAX_HEADER_BYTES", "0"), ("HEADER_TIMEOUT_SECONDS", "-1")):
        with pytest.raises(SettingsError, match=name):
            load_settings({**BASE, name: bad})


def test_service_clients_are_an_allow_list_with_their_scopes() -> None:
    assert dict(load_settings(BASE).service_clients) == {}  # no machine client by default
    settings = load_settings(
        {
            **BASE,
            "SERVICE_CLIENT_IDS": " ci-deployer=flags:read  flags:write , reporting=flags:read",
        }
    )
    assert dict(settings.service_clients) == {
        "ci-deployer": frozenset({"flags:read", "flags:write"}),
        "reporting": frozenset({"flags:read"}),
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("reporting", "has no '='"),
        ("reporting=", "lists no scopes"),
        ("=flags:read", "is not a client id"),
        ("bad client=flags:read", "is not a client id"),
        ("a=flags:read,a=flags:write", "listed twice"),
        ("a=flags:read,", "an entry is empty"),
        ('a=flags:"read"', "is not a scope"),
        ("a=flags:read=x", "is not a scope"),
        ("a=flags\\read", "is not a scope"),
        ("a=fläg", "is not a scope"),
    ],
)
def test_bad_service_clients_name_the_variable(value: str, says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({**BASE, "SERVICE_CLIENT_IDS": value})
    message = str(raised.value)
    assert message.startswith("SERVICE_CLIENT_IDS: ")
    assert says in message
    assert "\n" not in message


def test_the_api_audience_cannot_be_the_client_id_that_id_tokens_name() -> None:
    with pytest.raises(SettingsError, match=r"^OIDC_AUDIENCE: "):
        load_settings({**BASE, "OIDC_AUDIENCE": "client"})
    assert load_settings({**BASE, "OIDC_AUDIENCE": "https://api.example.com"}).oidc_audience


def test_the_metrics_token_is_optional_and_bounded() -> None:
    assert load_settings(BASE).metrics_token is None
    for token in ("a" * 16, "b" * 512, "x!~" * 10):
        assert load_settings({**BASE, "METRICS_TOKEN": token}).metrics_token == token
    for bad in ("a" * 15, "b" * 513, "has a space in it!!", "caf\u00e9-token-123456"):
        with pytest.raises(SettingsError, match="METRICS_TOKEN"):
            load_settings({**BASE, "METRICS_TOKEN": bad})


def test_otlp_endpoint_is_an_http_url_within_its_bound() -> None:
    assert load_settings(BASE).otlp_endpoint is None
    assert load_settings({**BASE, "OTEL_EXPORTER_OTLP_ENDPOINT": " "}).otlp_endpoint is None
    longest = "https://collector.example.com/" + "p" * (2_048 - 30)
    for good in ("http://otel-collector:4318", "https://collector.example.com/otlp/", longest):
        assert load_settings({**BASE, "OTEL_EXPORTER_OTLP_ENDPOINT": good}).otlp_endpoint == good
    for bad in (
        "otel-collector:4318",
        "grpc://collector:4317",
        "http://",
        "http://collector:4318/?tenant=a",
        "http://collector:4318/#frag",
        "http://collector:99999",
        longest + "p",
    ):
        with pytest.raises(SettingsError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
            load_settings({**BASE, "OTEL_EXPORTER_OTLP_ENDPOINT": bad})
