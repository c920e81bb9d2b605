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
from collections.abc import Callable, Mapping, Sequence
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
DEFINITION_TABLES = frozenset(
    {"feature_flags", "feature_flag_rules", "segments", "feature_flag_schedules"}
)
"""Change notices (their payload: the table written) that touch flag definitions only, not
what rules read about users. Evaluated results then stay good unless the reload finds a
definition replaced; and an event stream's fan-out re-evaluates only the replaced flags."""
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


Served = tuple[int | None, str | None, Any]
"""(flag id, variant, reason): what the usage counter counts for one flag."""
_served_interned: dict[Served, Served] = {}


def _served(e: Evaluation) -> Served:
    """The evaluation's usage triple, one shared tuple per distinct value (a tracked user
    holds 200 of them)."""
    triple = (e.flag_id, e.variant, e.reason)
    found = _served_interned.get(triple)
    if found is None:
        if len(_served_interned) >= PARTS_LIMIT:
            _served_interned.clear()
        found = _served_interned[triple] = triple
    return found


def _results_of(answers: Sequence[Answer], served: Sequence[Served], until: float) -> FlagResults:
    features_parts = [part for answer in answers for part in answer[0]]
    ofrep_parts = [part for answer in answers for part in answer[1]]
    digest = hashlib.sha256(b"".join([answer[2] for answer in answers])).hexdigest()
    etag = b'"' + digest[:32].encode() + b'"'
    return FlagResults(
        until,
        _interned(tuple(features_parts)),
        _interned(tuple(ofrep_parts)),
        etag,
        usage.variant_set(served),
    )


def encode_user_flags(results: list[Evaluation], until: float) -> FlagResults:
    return _results_of([_answer(e) for e in results], [_served(e) for e in results], until)


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
        self._live: tuple[dict[str, FlagDefinition], tuple[FlagDefinition, ...]] = ({}, ())
        self._notices = 0
        """Moves on every change notice: a load that one crossed is not trusted as fresh."""

    def invalidate(self) -> None:
        self._stale = True
        self._notices += 1
        self._drop_results()

    def changed(self, payload: str | None) -> None:
        """A change notice: a write to the definitions reloads them, and drops results only
        if the reload finds one replaced (the writer's own process hears its change twice:
        at commit, and by NOTIFY); any other write (overrides, what rules read about users)
        drops every result at once."""
        if payload in DEFINITION_TABLES:
            self._stale = True
            self._notices += 1
        else:
            self.invalidate()

    def _drop_results(self) -> None:
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

    async def live(self) -> tuple[FlagDefinition, ...]:
        """The non-archived definitions in evaluation order, one tuple per load (shared by
        every tracked user evaluated against it)."""
        flags = await self.flags()
        if self._live[0] is not flags:
            self._live = (flags, tuple(flag for flag in flags.values() if not flag.archived))
        return self._live[1]

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
            notices = self._notices
            started = time.monotonic()
            before = self._flags
            self._flags = kept_where_equal(before, await load_definitions())
            self._loaded_at = started
            if self._flags.keys() != before.keys() or any(
                definition is not before[key] for key, definition in self._flags.items()
            ):
                self._drop_results()  # results evaluated against a replaced definition
            if notices == self._notices:  # else a change came meanwhile: load again
                self._stale = False
            return self._flags


def kept_where_equal(
    before: Mapping[str, FlagDefinition], loaded: dict[str, FlagDefinition]
) -> dict[str, FlagDefinition]:
    """The loaded definitions, each replaced by the one held before when equal: a flag a
    change did not touch keeps its identity, so its encoded answers stay warm and an event
    stream's fan-out knows, by identity, which flags it must evaluate again. (Compiled
    regular expressions compare by identity: a flag with one counts as changed, which only
    costs its re-evaluation.)"""
    for key, definition in loaded.items():
        held = before.get(key)
        if held is not None and held == definition:
            loaded[key] = held
    return loaded


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
listener.on_payload(CHANNEL, flag_cache.changed)


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
    live = [flag for flag in flags.values() if not flag.archived]
    return _evaluate(live, targeting, now), _until(targeting, now)


def _evaluate(
    definitions: Sequence[FlagDefinition], targeting: Targeting, now: datetime
) -> list[Evaluation]:
    # Each flag sees only its own overrides: evaluation stays linear in flags + overrides.
    by_flag = _overrides_by_flag(targeting)
    return [
        evaluate_flag(flag, targeting.context, by_flag.get(flag.id, ()), now)
        for flag in definitions
    ]


def _overrides_by_flag(targeting: Targeting) -> dict[int, list[FlagOverride]]:
    by_flag: dict[int, list[FlagOverride]] = {}
    for override in targeting.overrides:
        by_flag.setdefault(override.flag_id, []).append(override)
    return by_flag


def _until(targeting: Targeting, now: datetime) -> float:
    # Jittered, so that users served together (a warm-up, a flag change) are not all
    # re-evaluated together RESULT_SECONDS later.
    until = time.monotonic() + RESULT_SECONDS * (1 - RESULT_JITTER * random.random())
    for override in targeting.overrides:
        if override.expires_at is not None:
            until = min(until, time.monotonic() + (override.expires_at - now).total_seconds())
    return until


class Tracked(NamedTuple):
    """A user's evaluation as an open event stream keeps it (api/flags/streams.py): their
    targeting and, flag by flag, the definition and the answer. After a change to flag
    definitions alone, `retracked` evaluates only the flags whose definition is new, with no
    query: a kill switch reaches 10,000 streams without 10,000 full evaluations."""

    user_id: int
    targeting: Targeting
    definitions: tuple[FlagDefinition, ...]
    """Shared by every user evaluated against the same load (one pointer each)."""
    answers: tuple[Answer, ...]
    served: tuple[Served, ...]
    results: FlagResults


async def tracked_flags(user_id: int) -> Tracked:
    """A full evaluation (one query), kept in the flag cache as `user_flags` keeps it."""
    generation = flag_cache.generation
    definitions = await flag_cache.live()
    targeting = await load_targeting(user_id)
    now = datetime.now(UTC)
    evaluations = _evaluate(definitions, targeting, now)
    answers = tuple(_answer(e) for e in evaluations)
    served = tuple(_served(e) for e in evaluations)
    results = _results_of(answers, served, _until(targeting, now))
    flag_cache.keep_results(user_id, None, results, generation)
    return Tracked(user_id, targeting, definitions, answers, served, results)


Plan = tuple[int, ...]
"""For each live definition now, its position among a tracked user's definitions, or -1
where it is new (to be evaluated)."""


def plan_for(before: tuple[FlagDefinition, ...], now: tuple[FlagDefinition, ...]) -> Plan:
    position = {id(definition): at for at, definition in enumerate(before)}
    return tuple(position.get(id(definition), -1) for definition in now)


def retracked(
    tracked: Tracked, definitions: tuple[FlagDefinition, ...], plan: Plan, generation: int
) -> Tracked:
    """`tracked` brought to `definitions`: answers kept where the definition is the same
    object, evaluated afresh where not; kept in the flag cache under `generation` (the one
    `definitions` were loaded in), so the refetch the event causes is a cache hit."""
    now = datetime.now(UTC)
    by_flag: dict[int, list[FlagOverride]] | None = None
    context = tracked.targeting.context
    answers: list[Answer] = []
    served: list[Served] = []
    for definition, at in zip(definitions, plan, strict=True):
        if at >= 0:
            answers.append(tracked.answers[at])
            served.append(tracked.served[at])
            continue
        if by_flag is None:
            by_flag = _overrides_by_flag(tracked.targeting)
        evaluation = evaluate_flag(definition, context, by_flag.get(definition.id, ()), now)
        answers.append(_answer(evaluation))
        served.append(_served(evaluation))
    results = _results_of(answers, served, tracked.results.until)
    flag_cache.keep_results(tracked.user_id, None, results, generation)
    return tracked._replace(
        definitions=definitions, answers=tuple(answers), served=tuple(served), results=results
    )


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
