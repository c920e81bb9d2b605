"""The test environment, set before anything imports the app or piccolo_conf."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_PG_DIR = ROOT / ".data" / "test-postgres"

TEST_ENV = {
    "APP_ENV": "development",
    "PUBLIC_URL": "http://127.0.0.1:8000",
    "OIDC_ISSUER": "http://127.0.0.1:1/unused",
    "OIDC_CLIENT_ID": "marketedge-test",
    "OIDC_CLIENT_SECRET": "marketedge-test-secret",
    "FRONTEND_ORIGINS": "http://app.localhost:3000",
    "EMBEDDED_PG_DIR": str(TEST_PG_DIR),
    "AUTH_RATE_LIMIT_PER_MINUTE": "100000",
}


def apply_test_env() -> None:
    for name, value in TEST_ENV.items():
        os.environ[name] = value
    # Tests never touch a developer's database: DATABASE_URL is set to the test server below.
    os.environ.pop("DATABASE_URL", None)
