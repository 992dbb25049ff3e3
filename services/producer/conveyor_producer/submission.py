"""Turning validated requests into Celery signatures, and publishing them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.canvas import Signature

from conveyor_core.catalog import TaskSpec, known_queues, lookup
from conveyor_core.errors import InvalidArgumentsError
from conveyor_producer.errors import ApiError
from conveyor_producer.ledger import Issued
from conveyor_producer.schemas import TaskCall, TaskRequest


def spec_for(name: str, field: str) -> TaskSpec:
    """The catalogue entry for `name`, or a 404 naming `field`."""
    spec = lookup(name)
    if spec is None:
        raise ApiError(404, "unknown_task", f"no task named {name!r}", field)
    return spec


def signature(
    celery: Celery, call: TaskCall, *, field: str = "", piped: bool = False, **options: Any
) -> tuple[Signature[Any], Issued]:
    """Validate one call; return its signature (with a fresh task id) and its ledger entry.

    `field` prefixes every error's field name, e.g. "steps[1]." in a workflow.
    """
    spec = spec_for(call.task, f"{field}task")
    try:
        kwargs = spec.bind(call.args, call.kwargs, piped=piped)
    except InvalidArgumentsError as exc:
        if not field:
            raise
        raise InvalidArgumentsError(field + exc.message, field + (exc.field or "")) from None
    queue = options.pop("queue", None) or spec.queue
    task_id = str(uuid.uuid4())
    sig = celery.signature(spec.celery_name, kwargs=kwargs, queue=queue, task_id=task_id, **options)
    return sig, Issued(task_id, spec.name, queue)


def _future_seconds(value: float | datetime, field: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ApiError(422, "invalid_request", f"{field}: needs a time zone, e.g. Z", field)
        return (value - datetime.now(UTC)).total_seconds()
    return value


def publish_options(request: TaskRequest, max_countdown: int) -> dict[str, Any]:
    """Celery publish options from a request's scheduling fields, checked against limits."""
    options: dict[str, Any] = {}
    if request.queue is not None:
        if request.queue not in known_queues():
            raise ApiError(
                422,
                "invalid_request",
                f"queue: unknown queue {request.queue!r}; known: {known_queues()}",
                "queue",
            )
        options["queue"] = request.queue
    for field in ("countdown", "eta"):
        value = getattr(request, field)
        if value is None:
            continue
        if _future_seconds(value, field) > max_countdown:
            # Beyond this, a waiting task would outlive the visibility timeout and run twice.
            raise ApiError(
                422, "invalid_request", f"{field}: at most {max_countdown} seconds ahead", field
            )
        options[field] = value
    if request.expires is not None:
        if _future_seconds(request.expires, "expires") <= 0:
            raise ApiError(422, "invalid_request", "expires: must be in the future", "expires")
        options["expires"] = request.expires
    if request.priority is not None:
        options["priority"] = request.priority
    return options


#: Redis commands buffered per pipeline round trip when publishing a batch.
PUBLISH_PIPELINE_SIZE = 1_000


def publish_all(celery: Celery, signatures: Sequence[Signature[Any]]) -> None:
    """Publish every signature over one connection, pipelined (kombu's `Producer.batch`).

    Each message is still built and routed by Celery and kombu as usual; only the final
    LPUSH (and the task-sent event's PUBLISH) are buffered and sent a thousand at a time
    instead of one round trip each.
    """
    with celery.producer_or_acquire() as producer, producer.batch(PUBLISH_PIPELINE_SIZE):
        for sig in signatures:
            sig.apply_async(producer=producer)
