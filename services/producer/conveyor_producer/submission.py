"""Turning validated requests into Celery signatures, and publishing them."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from celery import Celery
from celery.canvas import Signature
from fastapi import Response
from pydantic import BaseModel

from conveyor_core.catalog import TaskSpec, known_queues
from conveyor_core.errors import InvalidArgumentsError
from conveyor_producer.errors import BROKER_ERRORS, ApiError
from conveyor_producer.ledger import Issued, Ledger
from conveyor_producer.metrics import count_submissions
from conveyor_producer.schemas import BatchSubmitted, Submitted, TaskCall, TaskRequest

logger = logging.getLogger(__name__)


class SubmissionPath(Protocol):
    """What submitting needs: the API's `Context`, or an in-process `DirectSubmitter`."""

    @property
    def celery(self) -> Celery:
        """The Celery app that publishes."""

    @property
    def ledger(self) -> Ledger:
        """The bookkeeping: pending set, idempotency keys, the reconciler's replay calls."""

    @property
    def catalog(self) -> Mapping[str, TaskSpec]:
        """The tasks that may be submitted."""


def spec_for(catalog: Mapping[str, TaskSpec], name: str, field: str) -> TaskSpec:
    """The catalogue entry for `name`, or a 404 naming `field`."""
    spec = catalog.get(name)
    if spec is None:
        raise ApiError(404, "unknown_task", f"no task named {name!r}", field)
    return spec


def signature(
    ctx: SubmissionPath, call: TaskCall, *, field: str = "", piped: bool = False, **options: Any
) -> tuple[Signature[Any], Issued]:
    """Validate one call; return its signature (with a fresh task id) and its ledger entry.

    `field` prefixes every error's field name, e.g. "steps[1]." in a workflow.
    """
    spec = spec_for(ctx.catalog, call.task, f"{field}task")
    try:
        kwargs = spec.bind(call.args, call.kwargs, piped=piped)
    except InvalidArgumentsError as exc:
        if not field:
            raise
        raise InvalidArgumentsError(field + exc.message, field + (exc.field or "")) from None
    queue = options.pop("queue", None) or spec.queue
    task_id = str(uuid.uuid4())
    sig = ctx.celery.signature(
        spec.celery_name,
        kwargs=kwargs,
        queue=queue,
        task_id=task_id,
        **options,
        **spec.repr_options(kwargs),
    )
    return sig, Issued(task_id, spec.name, queue, replay_call(spec, kwargs, queue, options))


def replay_call(
    spec: TaskSpec, kwargs: dict[str, Any], queue: str, options: dict[str, Any]
) -> dict[str, Any]:
    """What the reconciler needs to publish this task again, as JSON-ready data.

    Relative times become absolute, so a copy published later keeps the schedule.
    """
    now = datetime.now(UTC)
    call_options: dict[str, Any] = {"queue": queue}
    if options.get("priority") is not None:
        call_options["priority"] = options["priority"]
    for name in ("eta", "expires"):
        value = options.get(name)
        if isinstance(value, int | float):
            value = now + timedelta(seconds=value)
        if value is not None:
            call_options[name] = value.isoformat()
    if options.get("countdown") is not None:
        call_options["eta"] = (now + timedelta(seconds=options["countdown"])).isoformat()
    return {"task": spec.celery_name, "kwargs": kwargs, "options": call_options}


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


def publish_recorded(publish: Callable[[], Any], ids: Sequence[str]) -> None:
    """Publish tasks already recorded as pending; a broker error is logged, not raised.

    The submission was accepted once recorded. Had Redis failed before, the request
    would have been a 503; failing now, a 503 would make the client send it again while
    the reconciler also publishes the recorded copy: two runs. So the client gets its
    202 and the reconciler publishes what did not make it.

    Any other error is treated the same way, with its traceback logged: kombu's publish
    batch raises RuntimeError once aborted (as after a broken connection), and the tasks
    are accepted all the same; a 500 would only invite a resubmission. (A 500 was seen
    once in the 20k chaos run; its cause was not captured, this is the likely one.)
    """
    try:
        publish()
    except BROKER_ERRORS as exc:
        logger.warning(
            "publishing %d recorded task(s) failed (%s); the reconciler will publish them",
            len(ids),
            exc,
        )
    except Exception:
        logger.exception(
            "publishing %d recorded task(s) failed unexpectedly; the reconciler will publish them",
            len(ids),
        )


#: OpenAPI description of the 200 a repeated idempotency key gets instead of the 202.
IDEMPOTENT_REPEAT: dict[int | str, dict[str, Any]] = {
    200: {"model": Submitted, "description": "Idempotency key seen"}
}


#: The same for a batch: the first batch's ids.
IDEMPOTENT_BATCH_REPEAT: dict[int | str, dict[str, Any]] = {
    200: {"model": BatchSubmitted, "description": "Idempotency key seen"}
}


def fingerprint(request: BaseModel) -> str:
    """A digest of what a request asks for, to tell a retry from a reused key."""
    canonical = request.model_dump_json(exclude={"idempotency_key"})
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def idempotency_of(
    key: str | None, request: BaseModel, namespace: str = ""
) -> tuple[str, str] | None:
    """The ledger's key (in its namespace) and the request's fingerprint; None: no key."""
    return None if key is None else (namespace + key, fingerprint(request))


def claim(
    ctx: SubmissionPath, idempotency: tuple[str, str] | None, ids: Sequence[str]
) -> list[str] | None:
    """Bind the client's key to `ids`; the ids bound first when the key was seen.

    `idempotency` is the key and a fingerprint of what was asked: the same key for a
    different request is a 409 naming the field.
    """
    if idempotency is None:
        return None
    key, fingerprint = idempotency
    earlier = ctx.ledger.claim_idempotency(key, ",".join(ids), fingerprint)
    if earlier is None:
        return None
    earlier_ids, earlier_fingerprint = earlier
    if earlier_fingerprint != fingerprint:
        raise ApiError(
            409,
            "idempotency_conflict",
            "idempotency_key was already used for a different request",
            "idempotency_key",
        )
    if ctx.ledger.recorded(earlier_ids.split(",")):
        return earlier_ids.split(",")
    # The first attempt claimed the key but was never recorded: Redis failed in between
    # and the key could not be released either, so that client got a 503 and no task
    # exists. Answering with its ids would lose the task; this attempt takes the key.
    # (Seen in the 20k chaos run as 3 tasks lost after a Redis restart.)
    ctx.ledger.rebind_idempotency(key, ",".join(ids), fingerprint)
    return None


def record(
    ctx: SubmissionPath, issued: Sequence[Issued], idempotency: tuple[str, str] | None
) -> None:
    """Record tasks as issued; on failure free the key, so the client's retry can use it."""
    try:
        ctx.ledger.issue(issued)
    except Exception:
        if idempotency is not None:
            ctx.ledger.release_idempotency(idempotency[0])
        for entry in issued:
            count_submissions(entry.task, "unavailable")
        raise


def submit_one(
    ctx: SubmissionPath,
    sig: Signature[Any],
    issued: Issued,
    response: Response | None = None,
    idempotency: tuple[str, str] | None = None,
) -> str:
    """Record and publish one task; return its id (the earlier one for a repeated key).

    The same key and request within the TTL answer 200 with the first id.
    """
    earlier = claim(ctx, idempotency, [issued.id])
    if earlier is not None:
        if response is not None:
            response.status_code = 200
        return earlier[0]
    record(ctx, [issued], idempotency)
    # Recorded means accepted: if the publish fails now, the reconciler publishes it.
    publish_recorded(lambda: sig.apply_async(), [issued.id])
    count_submissions(issued.task, "accepted")
    return issued.id


def submit_many(
    ctx: SubmissionPath,
    built: Sequence[tuple[Signature[Any], Issued]],
    response: Response | None = None,
    idempotency: tuple[str, str] | None = None,
) -> list[str]:
    """Record every task, then publish them all pipelined; return their ids in order.

    With a key, a repeat of the same batch answers 200 with the first batch's ids.
    """
    ids = [issued.id for _, issued in built]
    earlier = claim(ctx, idempotency, ids)
    if earlier is not None:
        if response is not None:
            response.status_code = 200
        return earlier
    record(ctx, [issued for _, issued in built], idempotency)
    publish_recorded(lambda: publish_all(ctx.celery, [sig for sig, _ in built]), ids)
    for _, issued in built:
        count_submissions(issued.task, "accepted")
    return ids
