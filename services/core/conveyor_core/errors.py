"""Exceptions shared by the producer and the workers.

They live here, not in the worker, so that the producer can rebuild them from a
result without importing worker code.
"""


class ConveyorError(Exception):
    """Base class of Conveyor's own errors."""


class InvalidArgumentsError(ConveyorError):
    """A task was called with arguments that do not fit its schema."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        return (type(self), (self.message, self.field))


class TaskFailedError(ConveyorError):
    """Raised on purpose by the `fail` demo task."""


class EmailRejectedError(ConveyorError):
    """The SMTP server refused an e-mail for good (a 5xx reply): it is not retried."""


class EmailDeferredError(ConveyorError):
    """Sending an e-mail failed for a reason that may pass (a 4xx reply, a network error).

    The task retries it with backoff; it ends the task only once the retries run out.
    """
