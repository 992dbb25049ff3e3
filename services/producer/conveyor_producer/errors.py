"""One JSON error shape for every failure: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from conveyor_core.errors import InvalidArgumentsError

logger = logging.getLogger(__name__)

#: Errors that mean "Redis is not answering": the client should retry later.
BROKER_ERRORS = (OperationalError, RedisConnectionError, RedisTimeoutError, ConnectionError)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the API reports to the client as it is."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"code": code, "message": message, "field": field}}


def _response(
    status: int, code: str, message: str, field: str | None = None, **kw: Any
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, **kw)


def _field_of(loc: tuple[Any, ...]) -> str | None:
    """`("body", "steps", 1, "task")` -> `"steps[1].task"`."""
    parts = list(loc[1:] if loc and loc[0] in {"body", "path", "query", "header"} else loc)
    field = ""
    for part in parts:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return field or None


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    loc = tuple(first.get("loc", ()))
    body_error = loc[:1] == ("body",) and request.method in {"POST", "PUT", "PATCH"}
    if body_error and not _is_json(request):
        return _response(
            415,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        )
    if first.get("type") == "json_invalid":
        return _response(400, "malformed_json", "request body is not valid JSON")
    field = _field_of(loc)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        message = "field required"
    elif first.get("type") == "extra_forbidden":
        message = "unknown field"
    return _response(422, "invalid_request", f"{field}: {message}" if field else message, field)


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = getattr(exc, "headers", None)
    code = _CODES.get(exc.status_code, "error")
    return _response(exc.status_code, code, str(exc.detail), headers=headers)


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _response(exc.status, exc.code, exc.message, exc.field)


async def _on_invalid_arguments(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidArgumentsError)
    return _response(422, "invalid_arguments", exc.message, exc.field)


async def _on_broker_error(_: Request, exc: Exception) -> JSONResponse:
    logger.warning("broker unavailable: %s", exc)
    return _response(
        503,
        "broker_unavailable",
        "the broker is not reachable; retry later",
        headers={"Retry-After": "5"},
    )


async def _on_refused_by_redis(_: Request, exc: Exception) -> JSONResponse:
    # Redis's ACL refused the producer's user (REDIS_TLS): a deployment error, not the
    # client's, and not a crash; the log names the command.
    logger.error("Redis refused a command of the producer's user: %s", exc)
    return _response(503, "broker_refused", "the broker refused the request; see the log")


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log, never to the client.
    logger.error("unhandled error", exc_info=exc)
    return _response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, expected or not, answer in the one JSON shape."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(InvalidArgumentsError, _on_invalid_arguments)
    for error in BROKER_ERRORS:
        app.add_exception_handler(error, _on_broker_error)
    app.add_exception_handler(NoPermissionError, _on_refused_by_redis)
    app.add_exception_handler(Exception, _on_unexpected)
