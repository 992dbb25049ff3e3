"""The API's error shape, `{"error": {"code", "message", "field"}}`, as exceptions."""

from __future__ import annotations

from typing import Any


class ConveyorError(Exception):
    """An answer of the API that is not a success; `code` and `field` as the API said."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class UnauthorizedError(ConveyorError):
    """401: a missing or wrong API key."""


class NotFoundError(ConveyorError):
    """404: no such task id, workflow or route."""


class UnknownTaskError(NotFoundError):
    """404 `unknown_task`: no task of that name in the catalogue."""


class IdempotencyConflictError(ConveyorError):
    """409: an idempotency key reused for a different request."""


class TooLargeError(ConveyorError):
    """413: a body, batch or workflow over the API's limits."""


class InvalidRequestError(ConveyorError):
    """400, 415, 422: a request the API cannot take; `field` names what is wrong."""


class InvalidArgumentsError(InvalidRequestError):
    """422 `invalid_arguments`: arguments that do not fit the task's schema."""


class BrokerUnavailableError(ConveyorError):
    """503: Redis does not answer; nothing was enqueued. Retry with the same key."""


class TaskFailedError(Exception):
    """A task that ended in FAILURE or REVOKED, with the status the API gave."""

    def __init__(self, status: dict[str, Any]) -> None:
        error = status.get("error") or {}
        super().__init__(
            f"task {status.get('id')} {status.get('state')}: "
            f"{error.get('type', '')}: {error.get('message', '')}"
        )
        self.status = status


_BY_CODE: dict[str, type[ConveyorError]] = {
    "unknown_task": UnknownTaskError,
    "invalid_arguments": InvalidArgumentsError,
}
_BY_STATUS: dict[int, type[ConveyorError]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    409: IdempotencyConflictError,
    413: TooLargeError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    503: BrokerUnavailableError,
}


def error_from(status: int, body: Any) -> ConveyorError:
    """The exception for an error answer (any body: a proxy's HTML page too)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return _BY_STATUS.get(status, ConveyorError)(status, "http_error", str(body)[:500])
    code = str(error.get("code", "http_error"))
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status, ConveyorError)
    return kind(status, code, str(error.get("message", "")), error.get("field"))
