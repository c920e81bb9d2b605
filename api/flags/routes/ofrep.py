"""OpenFeature Remote Evaluation Protocol (OFREP) endpoints for SDKs and services.

Callers: a browser session (with CSRF), a user's bearer token, or a machine client's bearer
token. `context.targetingKey` may only name the caller, unless the caller is a super-admin
or a service; the bulk call supports ETag / If-None-Match.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath
from litestar.response import Stream

from api.auth.deps import USER_OR_SERVICE, UserOrService, provide_user_or_service
from api.auth.sessions import stream_session
from api.flags.bounds import USER_ID_LIMIT, ascii_digits
from api.flags.evaluate import Evaluation
from api.flags.store import evaluate_one, user_flags
from api.flags.streams import (
    INACTIVITY_DELAY_SEC,
    RETRY_MS,
    STREAM_PATH,
    EventStream,
    event_frame,
    frames,
    hub,
)
from api.flags.usage import usage
from api.platform.config import settings_of
from api.platform.http.errors import AppError, NotAuthenticated, ServiceUnavailable
from api.platform.http.responses import EncodedJSON

BULK_CACHE_CONTROL = (b"cache-control", b"private, no-cache")


class OfrepResult(msgspec.Struct, omit_defaults=True):
    """A success (value, reason, variant, metadata) or a failure (errorCode, errorDetails)."""

    key: str
    value: Any = None
    """Of the flag's type: boolean, string, integer, float or object (docs/FLAGS.md)."""
    reason: str | None = None
    variant: str | None = None
    metadata: dict[str, str | int] | None = None
    errorCode: str | None = None
    errorDetails: str | None = None


class OfrepBulk(msgspec.Struct, omit_defaults=True):
    flags: list[OfrepResult] = msgspec.field(default_factory=list)
    errorCode: str | None = None
    errorDetails: str | None = None


class ContextProblem(Exception):
    def __init__(self, code: str, details: str, status: int = 400) -> None:
        super().__init__(details)
        self.code, self.details, self.status = code, details, status


class Subject(NamedTuple):
    user_id: int
    attributes: dict[str, Any]
    """The context's own attributes, which `context.<name>` conditions read."""


async def _subject(request: Request[Any, Any, Any], client: UserOrService) -> Subject:
    """Whom to evaluate for, from the caller and the request's evaluation context."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        raise ContextProblem("PARSE_ERROR", "The request body is not JSON") from None
    context = body.get("context", {}) if isinstance(body, dict) else None
    if not isinstance(context, dict):
        raise ContextProblem("INVALID_CONTEXT", "`context` must be an object")
    targeting = context.get("targetingKey")
    if targeting is not None and not isinstance(targeting, str):
        raise ContextProblem("INVALID_CONTEXT", "`targetingKey` must be a string")
    attributes = {k: v for k, v in context.items() if k != "targetingKey"}
    caller = client.user
    if caller is None:
        if not targeting:
            raise ContextProblem("TARGETING_KEY_MISSING", "A service must name a targetingKey")
    else:
        if not targeting:
            return Subject(caller.user_id, attributes)
        if targeting != str(caller.user_id) and not caller.is_super_admin:
            raise ContextProblem(
                "INVALID_CONTEXT", "targetingKey may only name the caller", status=403
            )
    assert targeting is not None
    if not ascii_digits(targeting) or len(targeting) > 10 or int(targeting) > USER_ID_LIMIT:
        raise ContextProblem(
            "INVALID_CONTEXT",
            f"targetingKey must be a user id (digits 0-9, at most {USER_ID_LIMIT})",
        )
    return Subject(int(targeting), attributes)


def _problem_of(error: AppError) -> ContextProblem:
    """An error met while evaluating, in OFREP's terms (errorCode, errorDetails)."""
    code = "INVALID_CONTEXT" if error.status_code in (400, 422) else "GENERAL"
    return ContextProblem(code, error.detail, error.status_code)


def _success(evaluation: Evaluation) -> OfrepResult:
    return OfrepResult(
        evaluation.key,
        evaluation.value,
        evaluation.reason.value,
        evaluation.variant,
        dict(evaluation.metadata),
    )


@post(
    "/ofrep/v1/evaluate/flags/{key:str}",
    tags=["ofrep"],
    operation_id="ofrepEvaluateFlag",
    dependencies=USER_OR_SERVICE,
    responses={
        400: ResponseSpec(OfrepResult, description="PARSE_ERROR / INVALID_CONTEXT / ..."),
        403: ResponseSpec(OfrepResult, description="targetingKey names someone else"),
        404: ResponseSpec(OfrepResult, description="FLAG_NOT_FOUND"),
    },
    status_code=200,
)
async def evaluate_flag_ofrep(
    request: Request[Any, Any, Any],
    caller: NamedDependency[UserOrService],
    key: FromPath[str],
) -> Response[OfrepResult]:
    try:
        subject = await _subject(request, caller)
        evaluation = await evaluate_one(key, subject.user_id, attributes=subject.attributes)
    except (ContextProblem, AppError) as error:
        problem = _problem_of(error) if isinstance(error, AppError) else error
        failure = OfrepResult(key, errorCode=problem.code, errorDetails=problem.details)
        headers = error.headers if isinstance(error, AppError) else None
        return Response(failure, status_code=problem.status, headers=headers)
    if evaluation.error_code:
        missing = OfrepResult(key, errorCode=evaluation.error_code, errorDetails="No such flag")
        return Response(missing, status_code=404)
    usage.count_one(evaluation.flag_id, evaluation.variant, evaluation.reason)
    return Response(_success(evaluation))


@post(
    "/ofrep/v1/evaluate/flags",
    tags=["ofrep"],
    operation_id="ofrepEvaluateFlags",
    responses={
        304: ResponseSpec(None, description="Not modified (If-None-Match)"),
        400: ResponseSpec(OfrepBulk, description="PARSE_ERROR / INVALID_CONTEXT / ..."),
        403: ResponseSpec(OfrepBulk, description="targetingKey names someone else"),
    },
    status_code=200,
)
async def evaluate_flags_ofrep(request: Request[Any, Any, Any]) -> Response[OfrepBulk | None]:
    """Every flag for the caller, the front end's hot path: the access rule is a call, before
    the body is read, since Litestar's dependency injection cost it a tenth of its time."""
    caller = await provide_user_or_service(request)
    try:
        subject = await _subject(request, caller)
        flags = await user_flags(subject.user_id, attributes=subject.attributes)
    except (ContextProblem, AppError) as error:
        problem = _problem_of(error) if isinstance(error, AppError) else error
        failure = OfrepBulk(errorCode=problem.code, errorDetails=problem.details)
        headers = error.headers if isinstance(error, AppError) else None
        return Response(failure, status_code=problem.status, headers=headers)
    usage.count(flags.variant_set)  # a 304 too: the SDK goes on using what it has
    if _if_none_match(request) == flags.etag:
        headers = {"ETag": flags.etag.decode(), "Cache-Control": "private, no-cache"}
        return Response(None, status_code=304, headers=headers)
    user = caller.user
    streams = b""
    if user is not None and user.stream_key is not None and subject.user_id == user.user_id:
        streams = _event_streams(request, user.stream_key)
    body = flags.ofrep_json_with(streams)  # every flag's OFREP answer, encoded once per user
    return EncodedJSON(body, headers=((b"etag", flags.etag), BULK_CACHE_CONTROL))


def _if_none_match(request: Request[Any, Any, Any]) -> bytes | None:
    """The first If-None-Match, from the raw headers (Litestar's header multidict, built for
    this one lookup, cost more than the cached evaluation it guards)."""
    for name, value in request.scope["headers"]:
        if name == b"if-none-match":
            return value
    return None


def _event_streams(request: Request[Any, Any, Any], stream_key: str) -> bytes:
    """`,"eventStreams":[…]`: a member of the bulk answer, for the caller's session."""
    url = f"{settings_of(request).public_url}{STREAM_PATH}{stream_key}"
    stream = {"type": "sse", "url": url, "inactivityDelaySec": INACTIVITY_DELAY_SEC}
    return b',"eventStreams":[' + msgspec.json.encode(stream) + b"]"


@get(
    STREAM_PATH + "{key:str}",
    tags=["ofrep"],
    operation_id="ofrepEventStream",
    responses={
        401: ResponseSpec(None, description="The key is unknown or its session has ended"),
        503: ResponseSpec(None, description="This process's EVENT_STREAMS_MAX is reached"),
    },
    media_type="text/event-stream",
)
async def ofrep_event_stream(request: Request[Any, Any, Any], key: FromPath[str]) -> Stream:
    """Server-sent `refetchEvaluation` events for the session whose stream key the URL
    carries (ADR-0008): its credential, as `EventSource` sends no cookies or headers."""
    settings = settings_of(request)
    caller = await stream_session(key, settings)
    if caller is None or caller.session_id is None:
        raise NotAuthenticated("This event stream's session has ended")
    if hub.count >= settings.event_streams_max or hub.closing:
        raise ServiceUnavailable("Too many event streams here", headers={"Retry-After": "30"})
    tracked = await hub.track(caller.user_id)
    flags = tracked.results
    etag = flags.etag
    last = request.headers.get("last-event-id")
    stream = EventStream(
        caller.user_id, caller.session_id, caller.is_super_admin, etag, flags.until
    )
    first = b"retry: %d\n: open\n\n" % RETRY_MS
    if last is not None and last.encode("latin-1", "replace") != etag.strip(b'"'):
        first += event_frame(etag)  # a change happened while the client was away
    hub.add(stream, tracked)
    return Stream(
        frames(stream, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
