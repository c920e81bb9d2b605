"""What the front end asks: which features are on for me, and why."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from api.auth.guards import authenticated
from api.auth.identity import Caller
from api.flags.store import evaluate_one, user_flags
from api.flags.usage import usage
from api.hierarchy.access import can_read_node
from api.platform.http.errors import NotFound
from api.platform.http.responses import EncodedJSON


class FeatureValue(msgspec.Struct):
    key: str
    value: Any
    """Of the flag's type: boolean, string, integer, float or object (docs/FLAGS.md)."""
    variant: str | None
    reason: str


class FeatureList(msgspec.Struct):
    flags: list[FeatureValue]


async def target_node(caller: Caller, node: int | None) -> int | None:
    """A node named in the request must be one the caller may read; unknown and unreadable
    nodes are both 404, so no existence leaks."""
    if node is not None and not await can_read_node(caller, node):
        raise NotFound("No such node", extra={"field": "node"})
    return node


@get("/api/v1/features", tags=["features"], operation_id="listFeatures")
async def list_features(
    request: Request[Any, Any, Any], node: FromQuery[int | None] = None
) -> Response[FeatureList]:
    """Every non-archived flag evaluated for the caller (at their primary node or `node`)."""
    caller = await authenticated(request)  # the `caller` rule as a call: the hot path skips DI
    node_id = await target_node(caller, node)
    flags = await user_flags(caller.user_id, node_id)
    usage.count(flags.variant_set)
    return EncodedJSON(flags.features_json)


@get(
    "/api/v1/features/{key:str}",
    tags=["features"],
    operation_id="getFeature",
)
async def get_feature(
    caller: NamedDependency[Caller], key: FromPath[str], node: FromQuery[int | None] = None
) -> FeatureValue:
    evaluation = await evaluate_one(key, caller.user_id, await target_node(caller, node))
    if evaluation.error_code == "FLAG_NOT_FOUND":
        raise NotFound(
            f"No flag named {key!r}",
            extra={"key": key, "errorCode": "FLAG_NOT_FOUND", "value": False},
        )
    usage.count_one(evaluation.flag_id, evaluation.variant, evaluation.reason)
    return FeatureValue(
        evaluation.key, evaluation.value, evaluation.variant, evaluation.reason.value
    )
