"""Flag definitions cached per process, kept fresh across replicas by LISTEN/NOTIFY.

A trigger (migration) notifies `feature_flags_changed` on every write to the flag tables;
each process listens on a dedicated connection and reloads on notice. While that connection
is down the cache is trusted for at most one second, so a change made through any replica
is served by every other within a second either way. Per request, one small query fetches
the caller's node path and the overrides that can apply to them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import msgspec

from api.flags import queries
from api.flags.conditions import ConditionError, compile_conditions
from api.flags.evaluate import (
    Evaluation,
    EvaluationContext,
    FlagDefinition,
    FlagOverride,
    Organization,
    Rule,
    Segment,
    Split,
    evaluate_flag,
)
from api.flags.rules import validate_definition, validate_split
from api.flags.usage import VariantSet, usage
from api.platform.cache import BoundedCache
from api.platform.db.changes import listener
from api.platform.http.errors import InvalidInput
from api.platform.metrics import cache_counters

CHANNEL = "feature_flags_changed"
UNSYNCED_TTL = 1.0
SYNCED_TTL = 300.0
RESULT_SECONDS = 300.0
RESULT_JITTER = 0.2  # results made together end over the last fifth of RESULT_SECONDS
RESULT_LIMIT = 100_000
logger = logging.getLogger("api.flags.store")
_RESULTS_HIT, _RESULTS_MISS = cache_counters("flag_results")
T = TypeVar("T")


FRAGMENT_LIMIT = 1024
"""Encoded answers kept per flag definition (by variant, reason and rule or node); past it an
answer shares only its encoded value."""
PARTS_LIMIT = 10_000
"""Distinct result layouts interned, so that users served alike share one tuple."""
_parts: dict[tuple[bytes, ...], tuple[bytes, ...]] = {}


class FlagResults(NamedTuple):
    """One user's evaluated flags, for both the REST list and OFREP bulk.

    Held as tuples of encoded pieces that every user served the same answer shares (the
    flag definition's), so a cached user costs pointers, never a copy of variant values
    (docs/FLAGS.md, Limits). Only bytes and numbers: a full cache costs the garbage
    collector nothing."""

    until: float
    features_parts: tuple[bytes, ...]
    ofrep_parts: tuple[bytes, ...]
    etag: bytes
    variant_set: VariantSet
    """What a request serving these counts as evaluated (api/flags/usage.py)."""

    @property
    def features_json(self) -> bytes:
        return b"".join((b'{"flags":[', b",".join(self.features_parts), b"]}"))

    @property
    def ofrep_json(self) -> bytes:
        return self.ofrep_json_with(b"")

    def ofrep_json_with(self, members: bytes) -> bytes:
        """The OFREP bulk body with more `,"name":value` members after `flags`, in one join
        (the body is the size of every flag: no second copy to append to it)."""
        return b"".join((b'{"flags":[', b",".join(self.ofrep_parts), b"]", members, b"}"))


_encode = msgspec.json.encode


Answer = tuple[tuple[bytes, ...], tuple[bytes, ...], bytes]
"""An evaluation's entry in the features list and in OFREP bulk (as pieces), and a digest
of the OFREP entry for the ETag."""


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:16]


def _answer(e: Evaluation) -> Answer:
    """The evaluation's entries, as pieces shared through its flag definition: whole
    entries when few, else the encoded value; so the ETag hashes digests, not values."""
    flag = e.flag
    if flag is None:
        features = _encode(
            {"key": e.key, "value": e.value, "variant": e.variant, "reason": e.reason.value}
        )
        ofrep = _encode(
            {
                "key": e.key,
                "value": e.value,
                "reason": e.reason.value,
                "variant": e.variant,
                "metadata": e.metadata,
            }
        )
        return (features,), (ofrep,), _digest(ofrep)
    memo = flag.encoded
    key = (e.variant, e.reason, tuple(e.metadata.items()))
    found = memo.get(key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    value, value_digest = memo.get(e.variant) or (b"", b"")
    if not value:
        value = _encode(e.value)
        value_digest = _digest(value)
        memo[e.variant] = (value, value_digest)
    head = b"".join((b'{"key":', _encode(e.key), b',"value":'))
    features_tail = b"".join(
        (b',"variant":', _encode(e.variant), b',"reason":', _encode(e.reason.value), b"}")
    )
    ofrep_tail = b"".join(
        (
            b',"reason":',
            _encode(e.reason.value),
            b',"variant":',
            _encode(e.variant),
            b',"metadata":',
            _encode(e.metadata),
            b"}",
        )
    )
    digest = _digest(head + value_digest + ofrep_tail)
    if len(memo) < FRAGMENT_LIMIT:
        answer = ((head + value + features_tail,), (head + value + ofrep_tail,), digest)
        memo[key] = answer
        return answer
    return (head, value, features_tail), (head, value, ofrep_tail), digest


def _interned(parts: tuple[bytes, ...]) -> tuple[bytes, ...]:
    found = _parts.get(parts)
    if found is not None:
        return found
    if len(_parts) >= PARTS_LIMIT:
        _parts.clear()
    _parts[parts] = parts
    return parts


def encode_user_flags(results: list[Evaluation], until: float) -> FlagResults:
    features_parts: list[bytes] = []
    ofrep_parts: list[bytes] = []
    digests: list[bytes] = []
    for evaluation in results:
        features, ofrep, digest = _answer(evaluation)
        features_parts.extend(features)
        ofrep_parts.extend(ofrep)
        digests.append(digest)
    etag = b'"' + hashlib.sha256(b"".join(digests)).hexdigest()[:32].encode() + b'"'
    variant_set = usage.variant_set((e.flag_id, e.variant, e.reason) for e in results)
    return FlagResults(
        until, _interned(tuple(features_parts)), _interned(tuple(ofrep_parts)), etag, variant_set
    )


class FlagCache:
    def __init__(self) -> None:
        self._flags: dict[str, FlagDefinition] = {}
        self._loaded_at = -1e9
        self._stale = True
        self._lock = asyncio.Lock()
        self._reload: asyncio.Task[dict[str, FlagDefinition]] | None = None
        self.results: BoundedCache[tuple[int, int | None], FlagResults] = BoundedCache(RESULT_LIMIT)
        self.generation = 0
        """Moves on every invalidation: results computed across one are not kept."""

    def invalidate(self) -> None:
        self._stale = True
        self.generation += 1
        self.results.clear()

    def keys_by_id(self) -> dict[int, str]:
        """Flag id → key of the flags loaded (the usage metric names flags by key)."""
        return {definition.id: key for key, definition in self._flags.items()}

    def cached_results(self, user_id: int, node_id: int | None) -> FlagResults | None:
        """A user's evaluated flags, trusted only while change notices are arriving."""
        if not listener.connected or self._stale:
            _RESULTS_MISS.inc()
            return None
        entry = self.results.get((user_id, node_id))
        if entry is None or time.monotonic() > entry.until:
            _RESULTS_MISS.inc()
            return None
        _RESULTS_HIT.inc()
        return entry

    def keep_results(
        self, user_id: int, node_id: int | None, flags: FlagResults, generation: int
    ) -> None:
        if not listener.connected or generation != self.generation:
            return
        self.results.put((user_id, node_id), flags)

    def _fresh(self) -> bool:
        ttl = SYNCED_TTL if listener.connected else UNSYNCED_TTL
        return not self._stale and time.monotonic() - self._loaded_at < ttl

    async def flags(self) -> dict[str, FlagDefinition]:
        if self._fresh():
            return self._flags
        if listener.connected and not self._stale:
            # Only the periodic reload is due (no change notice): serve what we have while
            # one task reloads, rather than making every request wait for it.
            if self._reload is None or self._reload.done():
                self._reload = asyncio.get_running_loop().create_task(self._load())
            return self._flags
        return await self._load()

    async def _load(self) -> dict[str, FlagDefinition]:
        """Stale stays set until the new definitions are in, so that a caller arriving while
        they load after a change waits for them (behind the lock) rather than being served,
        and caching under the new generation, the definitions the change replaced."""
        async with self._lock:
            if self._fresh():
                return self._flags
            generation = self.generation
            started = time.monotonic()
            self._flags = await load_definitions()
            self._loaded_at = started
            if generation == self.generation:  # else a change came meanwhile: load again
                self._stale = False
            return self._flags


async def load_definitions() -> dict[str, FlagDefinition]:
    """Every flag with its compiled rules, by key. Rows are read through the one validation
    the admin writes with; a flag, rule or segment that fails it (written around it, e.g. by
    psql) is left out and logged, never served."""
    flag_rows, rule_rows, segment_rows = await queries.definition_rows()
    segments: dict[int, Segment | None] = {}
    for row in segment_rows:
        conditions = _left_out_on_error(
            f"segment {row['key']!r}", compile_conditions, row["conditions"]
        )
        segments[row["id"]] = None if conditions is None else Segment(row["key"], conditions)
    checked = {
        row["id"]: _left_out_on_error(f"flag {row['key']!r}", validate_definition, row)
        for row in flag_rows
    }
    rules: dict[int, list[Rule]] = {}
    for row in rule_rows:
        definition, segment = checked.get(row["flag_id"]), segments.get(row["segment_id"])
        if definition is None or (row["segment_id"] is not None and segment is None):
            continue
        label = f"rule {row['name']!r}"
        conditions = _left_out_on_error(label, compile_conditions, row["conditions"])
        split = None
        if row["split"] is not None:
            variants = definition["variants"]
            split = _left_out_on_error(label, validate_split, row["split"], variants, "split")
            if split is None:
                continue
        if conditions is not None:
            rules.setdefault(row["flag_id"], []).append(
                Rule(row["name"], conditions, segment, row["variant"], _ordered(split))
            )
    definitions = {}
    for row in flag_rows:
        definition = checked[row["id"]]
        if definition is None:
            continue
        definitions[row["key"]] = FlagDefinition(
            id=row["id"],
            key=row["key"],
            name=row["name"],
            enabled=row["enabled"],
            rollout_percentage=row["rollout_percentage"],
            archived=row["archived"],
            version=row["version"],
            flag_type=definition["flag_type"],
            variants=definition["variants"],
            default_variant=definition["default_variant"],
            off_variant=definition["off_variant"],
            rollout_split=_ordered(definition["rollout_split"]),
            rules=tuple(rules.get(row["id"], ())),
        )
    return definitions


def _left_out_on_error(label: str, check: Callable[..., T], *args: Any) -> T | None:
    """`check(*args)`, or None (logged) when the row fails it."""
    try:
        return check(*args)
    except (ConditionError, InvalidInput) as error:
        logger.warning("%s is left out: %s", label, error)
        return None


def _ordered(split: Mapping[str, int] | None) -> Split | None:
    """A validated split's weights in variant-name order, as the engine takes them."""
    return None if split is None else tuple(sorted(split.items()))


flag_cache = FlagCache()
usage.flag_keys = flag_cache.keys_by_id
listener.on(CHANNEL, flag_cache.invalidate)


@dataclass(frozen=True, slots=True)
class Targeting:
    context: EvaluationContext
    overrides: tuple[FlagOverride, ...]


async def load_targeting(
    user_id: int, node_id: int | None = None, attributes: Mapping[str, Any] | None = None
) -> Targeting:
    """What rules and overrides read about the user, in one query: their node path (their
    primary node, or `node_id`), e-mail, organisation, and the overrides on that path."""
    rows = await queries.targeting_rows(user_id, node_id)
    first = rows[0]
    organization = None
    if first["org_id"] is not None:
        settings = msgspec.json.decode(first["org_settings"]) if first["org_settings"] else None
        organization = Organization(
            first["org_id"], first["org_slug"], settings if isinstance(settings, dict) else None
        )
    context = EvaluationContext(
        user_id=user_id,
        node_path=tuple(first["path"] or ()),
        email=first["email"],
        organization=organization,
        attributes=attributes or {},
    )
    overrides = tuple(
        FlagOverride(r["flag_id"], r["user_id"], r["node_id"], r["variant"], r["expires_at"])
        for r in rows
        if r["flag_id"] is not None
    )
    return Targeting(context, overrides)


async def evaluate_all(
    user_id: int, node_id: int | None = None, attributes: Mapping[str, Any] | None = None
) -> list[Evaluation]:
    """Every non-archived flag for the user: the flag cache plus one small query."""
    return (await _evaluate_all(user_id, node_id, attributes))[0]


async def _evaluate_all(
    user_id: int, node_id: int | None, attributes: Mapping[str, Any] | None = None
) -> tuple[list[Evaluation], float]:
    """The evaluations, and the monotonic time until which they hold (the next expiry of an
    override that applied, at most RESULT_SECONDS away)."""
    flags = await flag_cache.flags()
    targeting = await load_targeting(user_id, node_id, attributes)
    now = datetime.now(UTC)
    # Each flag sees only its own overrides: evaluation stays linear in flags + overrides.
    by_flag: dict[int, list[FlagOverride]] = {}
    for override in targeting.overrides:
        by_flag.setdefault(override.flag_id, []).append(override)
    results = [
        evaluate_flag(flag, targeting.context, by_flag.get(flag.id, ()), now)
        for flag in flags.values()
        if not flag.archived
    ]
    # Jittered, so that users served together (a warm-up, a flag change) are not all
    # re-evaluated together RESULT_SECONDS later.
    until = time.monotonic() + RESULT_SECONDS * (1 - RESULT_JITTER * random.random())
    for override in targeting.overrides:
        if override.expires_at is not None:
            until = min(until, time.monotonic() + (override.expires_at - now).total_seconds())
    return results, until


async def user_flags(
    user_id: int, node_id: int | None = None, attributes: Mapping[str, Any] | None = None
) -> FlagResults:
    """Every non-archived flag for the user, encoded; kept per (user, node) until a change
    notice or the time `_evaluate_all` gives, in a bounded LRU. Results for a request with
    its own context attributes depend on them, so they are computed afresh, not kept."""
    if attributes:
        results, until = await _evaluate_all(user_id, node_id, attributes)
        return encode_user_flags(results, until)
    cached = flag_cache.cached_results(user_id, node_id)
    if cached is not None:
        return cached
    generation = flag_cache.generation
    results, until = await _evaluate_all(user_id, node_id)
    evaluated = encode_user_flags(results, until)
    flag_cache.keep_results(user_id, node_id, evaluated, generation)
    return evaluated


async def evaluate_one(
    key: str,
    user_id: int,
    node_id: int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Evaluation:
    flag = (await flag_cache.flags()).get(key)
    now = datetime.now(UTC)
    if flag is None or flag.archived:
        return evaluate_flag(None, EvaluationContext(user_id), (), now, key=key)
    targeting = await load_targeting(user_id, node_id, attributes)
    return evaluate_flag(flag, targeting.context, targeting.overrides, now)
