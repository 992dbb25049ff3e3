"""A Python client of Conveyor's HTTP API (httpx only: no Celery, no server part).

from conveyor_client import Client

with Client("http://127.0.0.1:8000", api_key) as conveyor:
print(conveyor.submit("add", 2, 3).wait())
"""

from conveyor_client.client import (
    AsyncClient,
    AsyncTaskHandle,
    Client,
    TaskHandle,
    idempotency_key,
)
from conveyor_client.errors import (
    BrokerUnavailableError,
    ConveyorError,
    IdempotencyConflictError,
    InvalidArgumentsError,
    InvalidRequestError,
    NotFoundError,
    TaskFailedError,
    TooLargeError,
    UnauthorizedError,
    UnknownTaskError,
)

__all__ = [
    "AsyncClient",
    "AsyncTaskHandle",
    "BrokerUnavailableError",
    "Client",
    "ConveyorError",
    "IdempotencyConflictError",
    "InvalidArgumentsError",
    "InvalidRequestError",
    "NotFoundError",
    "TaskFailedError",
    "TaskHandle",
    "TooLargeError",
    "UnauthorizedError",
    "UnknownTaskError",
    "idempotency_key",
]
