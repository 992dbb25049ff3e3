"""What the worker does with work that cannot be done: dead letters and quarantine.

* A task that fails for good (its retries exhausted, or an error that is not retried)
  is copied into the dead-letter store with its arguments and traceback.
* A task whose executions keep dying with their process (a poison message: with
  `task_reject_on_worker_lost` it would come back forever) is quarantined there after
  `MAX_DELIVERIES` starts instead of being run again.
* A message that names an unknown task, is malformed, or cannot be decoded is stored
  there before Celery drops it, instead of vanishing with a log line.
"""

from __future__ import annotations

import base64
import logging
import time
import traceback as tb
from typing import Any, NamedTuple, NoReturn

import redis
from billiard.exceptions import WorkerLostError
from celery import Task
from celery.exceptions import Ignore, Reject
from celery.result import AsyncResult
from celery.signals import task_failure
from celery.states import SUCCESS
from celery.worker.consumer import Consumer
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.message import Message

from conveyor_core.dead_letters import DeadLetter, DeadLetterStore, clip, new_entry_id
from conveyor_core.ledger_keys import (
    REPUBLISHED_HEADER,
    START,
    deliveries_key,
    revoked_key,
    task_key,
)
from conveyor_core.settings import get_settings
from conveyor_worker.lifecycle import RECEIVED_AT_FIELD, result_client

logger = logging.getLogger(__name__)

#: How long a delivery counter outlives its last increment (seconds).
DELIVERIES_TTL = 7 * 86_400


def store() -> DeadLetterStore:
    """The dead-letter store of this process."""
    return DeadLetterStore(result_client())


class Start(NamedTuple):
    """What `begin_execution` found: this delivery's starts, or why the task is revoked."""

    starts: int
    #: The revoke record's reason ("revoked", "purged"); empty when the task may run.
    revoked: str


def begin_execution(task: Task[Any, Any]) -> Start | None:
    """Check the task's revoke record; unless revoked, record one more start of it.

    One round trip (`ledger_keys.START`): the revoke check, the start count for poison
    detection, and received/started times, retries and worker for the producer's status
    route. None when Redis cannot say.
    """
    request = task.request
    task_id = request.id or ""
    retries = request.retries or 0
    fields: list[Any] = ["started_at", time.time(), "retries", retries]
    fields += ["worker", request.hostname or ""]
    received_at = getattr(request, RECEIVED_AT_FIELD, None)
    if received_at is not None:
        fields += ["received_at", received_at]
    keys = (deliveries_key(task_id, retries), task_key(task_id), revoked_key(task_id))
    try:
        starts, revoked = result_client().eval(START, 3, *keys, DELIVERIES_TTL, *fields)
    except redis.RedisError as exc:
        logger.warning("could not record the start of %s: %s", task_id, exc)
        return None
    return Start(int(starts), revoked.decode() if isinstance(revoked, bytes) else str(revoked))


def guard(task: Task[Any, Any]) -> None:
    """Before a task runs: skip it if revoked, record its start, keep poison out.

    The revoke check and the start are one round trip (`begin_execution`).
    Raises `Ignore` for a revoked task (stored REVOKED first, as Celery's worker does
    for the revokes it holds in memory), and `Reject` requeued when Redis cannot say
    whether it is revoked: it waits in its queue rather than run against a revoke.
    Raises `Reject` (not requeued) for a task whose earlier executions all died with
    their process, and `Ignore` for a task the reconciler published again that already
    succeeded. Celery's own `worker_deduplicate_successful_tasks` covers messages
    Redis redelivered; the reconciler's copies are new messages, so they are checked here.
    """
    request = task.request
    if request.called_directly or not request.id:
        return
    start = begin_execution(task)
    if start is None:
        raise Reject("could not check whether the task is revoked", requeue=True)
    if start.revoked:
        end_revoked(task, start.revoked)
    limit = get_settings().max_deliveries
    if start.starts > limit:
        quarantine(task, start.starts - 1)
        raise Reject(f"quarantined: {start.starts - 1} executions died with their process", False)
    if getattr(request, REPUBLISHED_HEADER, None) and already_succeeded(task, request.id):
        logger.info("task %s already succeeded; skipping the republished copy", request.id)
        raise Ignore()


def end_revoked(task: Task[Any, Any], reason: str) -> NoReturn:
    """End a task whose revoke record exists without running it: REVOKED, acknowledged.

    `Ignore` makes Celery acknowledge the message and store nothing more; the result
    says REVOKED with the record's reason, as for a revoke Celery held in memory. If
    that cannot be stored, the message is requeued and checked again.
    """
    task_id = task.request.id or ""
    logger.info("Discarding revoked task: %s[%s] (%s)", task.name, task_id, reason)
    try:
        task.backend.mark_as_revoked(task_id, reason, request=task.request)
    except redis.RedisError as exc:
        raise Reject(f"could not store REVOKED: {exc}", requeue=True) from exc
    raise Ignore()


def already_succeeded(task: Task[Any, Any], task_id: str) -> bool:
    """Whether the result backend holds SUCCESS for this id."""
    try:
        return AsyncResult(task_id, app=task.app).state == SUCCESS
    except redis.RedisError:
        return False


def quarantine(task: Task[Any, Any], deaths: int) -> None:
    """Put a poison message's task into the dead-letter store."""
    request = task.request
    logger.error("quarantining task %s (%s) after %d deaths", request.id, task.name, deaths)
    store().add(
        DeadLetter(
            id=request.id,
            task_id=request.id,
            task=task.name,
            args=list(request.args or []),
            kwargs=dict(request.kwargs or {}),
            queue=(request.delivery_info or {}).get("routing_key"),
            reason="quarantined",
            error=f"its process died in each of {deaths} executions",
            attempts=deaths,
            worker=request.hostname or "",
        )
    )


@task_failure.connect
def _on_failure(
    sender: Task[Any, Any] | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """A task failed for good (Celery sends no task_failure for a retry): keep it."""
    if sender is None or task_id is None:
        return
    if isinstance(exception, WorkerLostError | Reject | Ignore):
        # Its process died (with task_reject_on_worker_lost the message is requeued and
        # runs again), or `guard` quarantined or skipped it: not a failure to keep here.
        return
    request = sender.request
    entry = DeadLetter(
        id=task_id,
        task_id=task_id,
        task=sender.name,
        args=list(args or []),
        kwargs=dict(kwargs or {}),
        queue=(request.delivery_info or {}).get("routing_key"),
        reason="failed",
        error=clip(f"{type(exception).__name__}: {exception}"),
        traceback=clip(str(einfo) if einfo else ""),
        attempts=(request.retries or 0) + 1,
        worker=request.hostname or "",
    )
    try:
        store().add(entry)
    except redis.RedisError as exc:
        logger.error("could not dead-letter failed task %s: %s", task_id, exc)


def raw_text(message: Message) -> str:
    """A message's body as text for a human: UTF-8 when it is, base64 otherwise."""
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    try:
        return clip(body.decode("utf-8"))
    except UnicodeDecodeError:
        return clip("base64:" + base64.b64encode(body).decode())


def message_entry(message: Message, reason: Any, error: str, body: Any = None) -> DeadLetter:
    """A dead letter for a message the worker cannot run."""
    headers = message.headers or {}
    if body is None and reason != "undecodable":
        try:  # Celery does not decode a message it will not run; JSON only (message.accept)
            body = message.decode()
        except Exception:
            body = None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if isinstance(body, list | tuple) and len(body) >= 2:  # protocol 2: (args, kwargs, embed)
        args = list(body[0]) if isinstance(body[0], list | tuple) else []
        kwargs = dict(body[1]) if isinstance(body[1], dict) else {}
    task_id = headers.get("id") if isinstance(headers.get("id"), str) else None
    task_name = headers.get("task") if isinstance(headers.get("task"), str) else None
    return DeadLetter(
        id=task_id or new_entry_id(),
        task_id=task_id,
        task=task_name if reason != "undecodable" else None,
        args=args,
        kwargs=kwargs,
        queue=(message.delivery_info or {}).get("routing_key"),
        reason=reason,
        error=clip(error),
        raw=raw_text(message),
    )


class DeadLetteringConsumer(Consumer):
    """Celery's consumer, but a message it cannot run is stored before it is dropped.

    If the store cannot be written the message is neither acknowledged nor rejected:
    it stays unacknowledged and Redis delivers it again after the visibility timeout.
    """

    def _keep(self, entry: DeadLetter) -> bool:
        try:
            store().add(entry)
        except redis.RedisError as exc:
            logger.error("could not dead-letter message %s, leaving it unacked: %s", entry.id, exc)
            return False
        logger.error("dead-lettered message %s (%s): %s", entry.id, entry.reason, entry.error)
        return True

    def on_unknown_message(self, body: Any, message: Message) -> None:
        """A message that is not a Celery task message."""
        if self._keep(message_entry(message, "invalid_message", "not a task message", body)):
            super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Message, exc: Exception) -> None:
        """A message naming a task this worker does not have."""
        entry = message_entry(message, "unknown_task", f"unknown task: {exc}", body)
        if self._keep(entry):
            super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Message, exc: Exception) -> None:
        """A task message Celery cannot use (bad arguments container, bad ETA...)."""
        error = "".join(tb.format_exception_only(type(exc), exc)).strip()
        # A refused serializer (pickle) arrives here, not in on_decode_error.
        reason = "undecodable" if isinstance(exc, ContentDisallowed | DecodeError) else None
        entry = message_entry(message, reason or "invalid_message", error, body)
        if self._keep(entry):
            super().on_invalid_task(body, message, exc)

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """A message whose body cannot be decoded, or in a refused format (pickle)."""
        error = "".join(tb.format_exception_only(type(exc), exc)).strip()
        if self._keep(message_entry(message, "undecodable", error)):
            super().on_decode_error(message, exc)
