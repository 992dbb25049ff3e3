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
