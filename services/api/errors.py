"""One error body for every 4xx and 5xx, and the exceptions handlers raise to get one.

Every answer that is not a success has the shape of ``schemas.api.ErrorBody``:
``{"error": {"code", "message", "details": [{"field", "reason"}]}, "request_id"}``.
Identifiers a client sent are echoed truncated, so a 100 KB id is not sent back.
"""

import logging
import re
import uuid
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import OperationalError

from schemas.api import Error, ErrorBody, ErrorDetail
from services.api.payload_schema import ValidatorUnavailable

log = logging.getLogger(__name__)

ECHO_CHARS = 64

# The code of each status when the raiser gave none.
STATUS_CODES = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}

BEARER_CHALLENGE = 'Bearer realm="jobledger"'


def echo(value: str) -> str:
    """A client-supplied value, shortened for messages."""
    return value if len(value) <= ECHO_CHARS else value[:ECHO_CHARS] + "..."


class ApiError(Exception):
    """An answer other than success, with its status, code, message and field details."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: list[ErrorDetail] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def invalid(field: str, reason: str, status: int = 422) -> ApiError:
    return ApiError(status, f"{field}: {reason}", details=[ErrorDetail(field=field,
                                                                       reason=reason)])


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind} {echo(ident)!r} not found")


def request_id_of(request: Request[Any, Any, Any]) -> str:
    state = request.scope.setdefault("state", {})
    rid = state.get("request_id")
    if rid is None:
        rid = state["request_id"] = uuid.uuid4().hex
    return str(rid)


def _respond(request: Request[Any, Any, Any], error: ApiError) -> Response[ErrorBody]:
    rid = request_id_of(request)
    body = ErrorBody(error=Error(code=error.code, message=error.message,
                                 details=error.details), request_id=rid)
    headers = {**error.headers, "X-Request-ID": rid}
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
    return Response(body, status_code=error.status, headers=headers)


def on_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    return _respond(request, exc)


_MISSING = re.compile(r"Missing required \w+ parameter '([^']{1,64})'")


def on_http_exception(request: Request[Any, Any, Any],
                      exc: HTTPException) -> Response[ErrorBody]:
    """Litestar's own errors (unknown route, wrong method, body too large, bad path
    parameter) in our shape; their texts name no client input beyond the path."""
    status = exc.status_code
    details: list[ErrorDetail] = []
    if isinstance(exc, ValidationException):
        status = 422 if status == 400 else status
        for problem in exc.extra if isinstance(exc.extra, list) else []:
            if isinstance(problem, dict):
                details.append(ErrorDetail(field=str(problem.get("key") or "request"),
                                           reason=str(problem.get("message") or "invalid")))
        if not details and (missing := _MISSING.match(exc.detail or "")) is not None:
            # Litestar names a missing required parameter in its message only.
            details.append(ErrorDetail(field=missing.group(1), reason="required"))
    message = exc.detail if status < 500 else "internal error"
    headers = dict(exc.headers or {})
    return _respond(request, ApiError(status, message, details=details, headers=headers))


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error on %s %s", request.method, request.url.path,
                  exc_info=exc)
    return _respond(request, ApiError(500, "internal error; the request id is in the logs"))


def on_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """A part the API depends on is busy or away: the client may try again."""
    log.warning("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    return _respond(request, ApiError(503, f"temporarily unavailable: {exc}",
                                      headers={"Retry-After": "1"}))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: on_api_error,
    ValidatorUnavailable: on_unavailable,
    OperationalError: on_unavailable,  # the read models' database is locked or away
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
