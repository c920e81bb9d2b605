"""One change mechanism: a write's announced changes reach this process's caches when it
commits, before the writer answers, and never when it rolls back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.platform.db.changes import announce, change_transaction, listener
from api.platform.db.sql import fetch

CHANNEL = "test_change_mechanism"


@pytest.fixture(name="received")
def fx_received() -> Iterator[list[str | None]]:
    seen: list[str | None] = []
    listener.on_payload(CHANNEL, seen.append)
    yield seen
    listener._callbacks.pop(CHANNEL, None)


async def test_an_announced_change_is_applied_here_at_commit(received: list[str | None]) -> None:
    async with change_transaction():
        await fetch("SELECT 1")
        announce(CHANNEL, "7")
        announce(CHANNEL, "7")  # the same change once
        assert received == []  # not before commit: a reader could still load the old row
    assert received == ["7"]


async def test_a_rolled_back_change_is_never_applied(received: list[str | None]) -> None:
    async def refused_write() -> None:
        async with change_transaction():
            announce(CHANNEL, "8")
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        await refused_write()
    assert received == []


async def test_a_nested_transaction_applies_its_changes_with_the_outer_commit(
    received: list[str | None],
) -> None:
    async with change_transaction():
        async with change_transaction():
            announce(CHANNEL, None)
        assert received == []
    assert received == [None]


def test_outside_a_transaction_a_change_is_applied_at_once(received: list[str | None]) -> None:
    announce(CHANNEL, "9")
    assert received == ["9"]
