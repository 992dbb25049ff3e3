"""Submitting from another Python service, through the producer's own submission path.

A service that runs beside Conveyor with Redis access (a web app's request handler, a
cron job, a consumer of another queue) submits here instead of calling Celery's
`send_task`: its tasks are validated against the catalogue, recorded in the ledger
before they are published (so the reconciler publishes one that a Redis failure lost),
deduplicated by idempotency key, listed in `recent` and readable by id through the API,
exactly as the API's submissions are::

    from conveyor_producer.direct import DirectSubmitter

    submitter = DirectSubmitter()  # settings from the environment, as the producer's
    task_id = submitter.submit("add", 2, 3, idempotency_key="order-7-total")

It needs the producer's Redis settings (REDIS_HOST, REDIS_USERNAME=producer and its
password, ...) and the same task packages as the workers; no API key and no HTTP.
Errors are the API's: `InvalidArgumentsError` and `ApiError` name the field, a
pydantic `ValidationError` an option out of range; a Redis failure before the task was
recorded raises redis's error, and nothing was enqueued (submit again, same key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis
from celery import Celery

from conveyor_core.catalog import TaskSpec
from conveyor_core.settings import SubmitterSettings
from conveyor_producer.context import submission_parts
from conveyor_producer.errors import ApiError
from conveyor_producer.ledger import Ledger
from conveyor_producer.schemas import BatchRequest, TaskCall, TaskRequest
from conveyor_producer.submission import (
    idempotency_of,
    publish_options,
    signature,
    submit_many,
    submit_one,
)


class DirectSubmitter:
    """The producer's submission path in this process: validate, record, publish."""

    def __init__(self, settings: SubmitterSettings | None = None) -> None:
        self.settings = settings or SubmitterSettings()
        self._celery, self._broker, self._ledger, self._catalog = submission_parts(self.settings)

    @property
    def celery(self) -> Celery:
        """The Celery app that publishes."""
        return self._celery

    @property
    def ledger(self) -> Ledger:
        """The ledger every submission is recorded in first."""
        return self._ledger

    @property
    def catalog(self) -> Mapping[str, TaskSpec]:
        """The tasks that may be submitted (the task packages loaded here)."""
        return self._catalog

    def submit(self, task: str, /, *args: Any, **options: Any) -> str:
        """Submit one task; its id (the first submission's, for a repeated key).

        Keyword arguments are the task's, except the API's options: countdown, eta,
        expires, priority, queue, idempotency_key.
        """
        known = set(TaskRequest.model_fields) - set(TaskCall.model_fields)
        kwargs = {name: value for name, value in options.items() if name not in known}
        request = TaskRequest.model_validate(
            {"task": task, "args": list(args), "kwargs": kwargs}
            | {name: value for name, value in options.items() if name in known}
        )
        sig, issued = signature(
            self, request, **publish_options(request, self.settings.max_countdown)
        )
        return submit_one(self, sig, issued, None, idempotency_of(request.idempotency_key, request))

    def submit_batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any], Mapping[str, Any]]],
        *,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Submit many tasks, `(name, args, kwargs)` each: all, or none if one is refused."""
        limit = self.settings.max_batch_tasks
        if len(calls) > limit:
            raise ApiError(413, "too_large", f"at most {limit} tasks in a batch", "tasks")
        request = BatchRequest.model_validate(
            {
                "tasks": [{"task": n, "args": list(a), "kwargs": dict(k)} for n, a, k in calls],
                "idempotency_key": idempotency_key,
            }
        )
        built = [
            signature(self, call, field=f"tasks[{i}].") for i, call in enumerate(request.tasks)
        ]
        return submit_many(self, built, None, idempotency_of(request.idempotency_key, request))

    @property
    def broker(self) -> redis.Redis:
        """The broker's Redis client (to check it answers, say)."""
        return self._broker

    def close(self) -> None:
        """Close the Redis connections."""
        self._broker.close()
        self._ledger.client.close()
        self._celery.close()
