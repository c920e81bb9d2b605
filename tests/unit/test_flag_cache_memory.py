"""Memory per cached user result is bounded by what the response needs (docs/FLAGS.md,
Limits): cached results share the flag definitions' encoded answers, never copy them."""

from __future__ import annotations

import gc
import time
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal

from api.flags.bounds import MAX_DEFINITION_BYTES, MAX_OBJECT_VARIANT_BYTES, encoded_size
from api.flags.evaluate import Evaluation, EvaluationContext, FlagDefinition, evaluate_flag
from api.flags.rules import validate_definition
from api.flags.store import RESULT_LIMIT, encode_user_flags
from api.platform.cache import BoundedCache

USERS = 100_000
FLAGS = 20
MEMORY_LIMIT_MB = 100
"""Documented in docs/FLAGS.md: 100,000 cached users, 20 flags at the size limits."""


def largest_flag(number: int) -> FlagDefinition:
    """An object flag at the bounds: three variants of just under 16 KiB each (the flag's
    definition just under 64 KiB), split three ways so users get different answers."""
    blob = "x" * (MAX_OBJECT_VARIANT_BYTES - 40)
    variants = {name: {"flag": number, "name": name, "blob": blob} for name in ("a", "b", "c")}
    split = {"a": 1, "b": 1, "c": 1}
    checked = validate_definition(
        {
            "flag_type": "object",
            "variants": variants,
            "default_variant": "a",
            "off_variant": "b",
            "rollout_split": split,
        }
    )
    assert encoded_size(variants) <= MAX_DEFINITION_BYTES
    return FlagDefinition(
        id=number, key=f"big-{number}", name="big", enabled=True,
        rollout_percentage=Decimal(50), archived=False, version=1, flag_type="object",
        variants=checked["variants"], default_variant="a", off_variant="b",
        rollout_split=tuple(sorted(split.items())),
    )  # fmt: skip


def answers_of(flag: FlagDefinition, now: datetime) -> list[Evaluation]:
    """The flag's three distinct answers (b is also the off variant), found among the first users."""
    found: dict[str | None, Evaluation] = {}
    for user in range(1000):
        evaluation = evaluate_flag(flag, EvaluationContext(user), (), now)
        found.setdefault(f"{evaluation.variant}/{evaluation.reason}", evaluation)
    assert len(found) == 3, found
    return list(found.values())


def test_100000_cached_users_of_the_largest_flags_stay_under_the_documented_figure() -> None:
    flags = [largest_flag(n) for n in range(FLAGS)]
    now = datetime.now(UTC)
    # Each flag's three answers, evaluated once; user u gets the answers
    # named by u's base-3 digits, so no two of the 100,000 users are served alike.
    answers = [answers_of(flag, now) for flag in flags]
    assert RESULT_LIMIT >= USERS
    cache: BoundedCache[tuple[int, int | None], object] = BoundedCache(RESULT_LIMIT)
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        for user in range(USERS):
            results = [answers[n][user // 3**n % 3] for n in range(FLAGS)]
            cache.put((user, None), encode_user_flags(results, 1e12))
        gc.collect()
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one = encode_user_flags([evaluate_flag(f, EvaluationContext(1), (), now) for f in flags], 0)
    assert len(one.ofrep_json) > FLAGS * 16_000  # each response carries the full values
    print(f"{used / 2**20:.1f} MB for {USERS} users ({time.perf_counter() - started:.1f} s)")
    assert len(cache) == USERS
    assert used < MEMORY_LIMIT_MB * 2**20, f"{used / 2**20:.1f} MB"
