"""A transaction-pooling PgBouncer in front of the test database, for the e2e tests of the
scale-out path (replicas and the release step run through it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pgbouncer import PgBouncer


@pytest.fixture(name="pooler", scope="session")
def fx_pooler(database: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(database)
    yield bouncer
    bouncer.stop()
