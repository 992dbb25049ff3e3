"""What the worker records about each task for the producer's status route.

Celery's result keeps the state and the outcome; the producer also shows when a task was
received, started and finished, by which worker, after how many retries, and how far it
got. The worker writes those into the task's bookkeeping hash (`ledger_keys.task_key`),
only when that hash exists, i.e. only for tasks the producer issued: received and
started together when the task starts (`dead_lettering.begin_execution`), finished
when it ends.
"""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache
from typing import Any

import redis
from celery import Task
from celery.signals import task_postrun, task_received, task_revoked

from conveyor_core.ledger_keys import FINISH, HSET_IF_EXISTS, PENDING, task_key
from conveyor_core.settings import get_settings

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def result_client() -> redis.Redis:
    """The result-database client of this process (where the ledger lives)."""
    # One client per process (prefork children each get their own after the fork,
    # since the cache is filled on first use in the child).
    settings = get_settings()
    return redis.Redis.from_url(
        settings.result_backend_url,
        socket_connect_timeout=settings.redis_socket_timeout,
        socket_timeout=settings.redis_socket_timeout,
    )


def record(task_id: str | None, **fields: Any) -> None:
    """Set fields on an issued task's hash; bookkeeping never fails the task itself."""
    if not task_id:
        return
    values: list[Any] = []
    for name, value in fields.items():
        values += [name, value if isinstance(value, str | int | float) else json.dumps(value)]
    try:
        result_client().eval(HSET_IF_EXISTS, 1, task_key(task_id), *values)
    except redis.RedisError as exc:
        logger.warning("could not record %s for task %s: %s", sorted(fields), task_id, exc)


class ProgressReporter:
    """Report a task's progress to Celery (state PROGRESS) and to its bookkeeping hash."""

    def __init__(self, task: Task[Any, Any], total: int) -> None:
        self.task = task
        self.total = total

    def __call__(self, current: int, message: str = "") -> None:
        """Say that `current` of `total` steps are done."""
        progress = {"current": current, "total": self.total, "message": message}
        self.task.update_state(state="PROGRESS", meta=progress)
        record(self.task.request.id, progress=progress)


#: Request field carrying the time the worker received the message to the process that
#: runs it, where `dead_lettering.begin_execution` records it with the start.
RECEIVED_AT_FIELD = "conveyor_received_at"


@task_received.connect
def _on_received(request: Any = None, **_: Any) -> None:
    """Stamp the receipt time on the request, recorded when the task starts.

    A task with an ETA waits here first, so its receipt is recorded at once; for the
    others that would be a Redis round trip in the main process for every task.
    """
    now = time.time()
    if getattr(request, "eta", None):
        record(getattr(request, "id", None), received_at=now, worker=request.hostname or "")
    request_dict = getattr(request, "_request_dict", None)
    if isinstance(request_dict, dict):
        request_dict[RECEIVED_AT_FIELD] = now


#: States after which a task will not run again (IGNORED: a republished copy skipped).
TERMINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED", "IGNORED"})
#: Final states the result backend stores, settling the task in the same round trip
#: (conveyor_core.result_store).
SETTLED_BY_STORE = frozenset({"SUCCESS", "FAILURE"})


@task_postrun.connect
def _on_finished(
    task_id: str | None = None, state: str | None = None, retval: Any = None, **_: Any
) -> None:
    if state in SETTLED_BY_STORE:
        return
    if state == "REJECTED" and getattr(retval, "requeue", False):
        return  # back in its queue (Reject(requeue=True)): the reconciler keeps watching it
    if state in TERMINAL_STATES:
        settle(task_id, finished_at=time.time())
    else:  # RETRY: a new message with the same id is on its way
        record(task_id, finished_at=time.time())


@task_revoked.connect
def _on_revoked(request: Any = None, **_: Any) -> None:
    settle(getattr(request, "id", None))


def settle(task_id: str | None, **fields: Any) -> None:
    """A task reached a terminal state: record fields, and the reconciler may forget it."""
    if not task_id:
        return
    values: list[Any] = [task_id]
    for name, value in fields.items():
        values += [name, value]
    try:
        result_client().eval(FINISH, 2, task_key(task_id), PENDING, *values)
    except redis.RedisError as exc:
        # The reconciler finds the result and forgets the task anyway.
        logger.warning("could not settle task %s: %s", task_id, exc)
