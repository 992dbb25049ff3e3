"""Every use of a private part of Celery or kombu, in one place.

Conveyor leans on a few names that Celery and kombu do not document as API: a method
a subclass overrides, a module global it replaces, a class-level dict, a method it
calls, and the Redis key layout kombu writes. Each is wrapped here by one small
function, class or constant whose docstring names the upstream code it depends on;
nothing else in Conveyor touches those names. `pyproject.toml` pins Celery and kombu
to the minor release they were checked against (`PINNED_MINOR`), and two contract
tests fail when a release moves one of them:

* tests/unit/test_upstream_contract.py: the name exists, its signature is what we
  call or override, the installed versions are within the pin;
* tests/integration/test_celery_internals.py: the hook is reached in a real worker.

The table in docs/architecture.md ("Celery's and kombu's private parts") lists them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import kombu.transport.virtual.base as _virtual_base
import kombu.utils as _kombu_utils
from celery.backends.redis import RedisBackend

#: The minor releases these hooks were checked against; pyproject.toml pins the same.
PINNED_MINOR = {"celery": (5, 7), "kombu": (5, 7)}

# ---- kombu: the emergency dump at shutdown -----------------------------------------


def kombu_emergency_dump(state: list[dict[str, Any]], *args: Any, **kwargs: Any) -> str:
    """The dump kombu ships: a pickle in a temporary file; returns its path.

    kombu/utils/div.py `emergency_dump_state`, exported by `kombu.utils` (public).
    """
    dump: Any = _kombu_utils.emergency_dump_state  # its stub says it returns None
    return str(dump(state, *args, **kwargs))


def replace_emergency_dump(dump: Callable[..., str]) -> None:
    """Make kombu's shutdown restore call `dump` instead of its own emergency dump.

    Upstream: kombu/transport/virtual/base.py, `QoS.restore_unacked_once` calls the
    module global `emergency_dump_state(messages, stderr=...)` (imported there from
    kombu/utils/div.py) with `[message.serializable() ...]` of the messages
    `restore_unacked()` returned as unrestored. Replacing that global is the only way
    in.

    Dead on the Redis transport of kombu 5.7: `kombu.transport.redis.QoS` overrides
    `restore_unacked`, which returns None (and lets a connection error propagate), so
    `restore_unacked_once` never reaches the dump; the messages stay in the `unacked`
    hash and come back after the visibility timeout. tests/unit/test_upstream_contract.py
    checks that this is still so.
    """
    _virtual_base.emergency_dump_state = dump  # type: ignore[attr-defined]


def installed_emergency_dump() -> Callable[..., Any]:
    """The function kombu's shutdown restore calls now (see `replace_emergency_dump`)."""
    dump: Callable[..., Any] = _virtual_base.emergency_dump_state  # type: ignore[attr-defined]
    return dump


# ---- kombu: putting a message back on its queue ------------------------------------


def restore_message(
    channel: Any, payload: dict[str, Any], exchange: str, routing_key: str, pipe: Any
) -> None:
    """Queue `payload` again (marked redelivered) on `pipe`, as kombu restores unacked ones.

    Upstream: kombu/transport/redis.py `Channel._do_restore_message(payload, exchange,
    routing_key, pipe, leftmost=False)`, which `QoS.restore_by_tag` calls: it sets the
    `redelivered` flags, finds the queues bound to exchange and routing key and pushes
    the message onto the list of its priority. `pipe.execute()` is the caller's.
    """
    channel._do_restore_message(payload, exchange, routing_key, pipe)


# ---- Celery: the result backend's write of one state -------------------------------


class StoreStateBackend(RedisBackend):
    """A RedisBackend whose write of a task's state is `store_state`, not Celery's.

    Upstream: celery/backends/base.py. `Backend.store_result` calls
    `self._store_result(task_id, result, state, traceback, request=request, **kwargs)`
    (the encoded result, traceback positional since 5.7);
    `BaseKeyValueStoreBackend._store_result` does a GET (a stored SUCCESS wins) and a
    SET + PUBLISH. `Backend._get_result_meta(result, state, traceback, request,
    format_date=True, encode=False)` builds the stored dict (status, result, traceback,
    children, date_done; with `result_extended` the request's name, args, kwargs,
    worker, retries, queue). celery/backends/redis.py `RedisBackend._MAX_STR_VALUE_SIZE`
    is the largest value Redis takes.
    """

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        return self.store_state(task_id, result, state, traceback, request)

    def store_state(
        self, task_id: str, result: Any, state: str, traceback: Any, request: Any
    ) -> Any:
        """Store one state of a task; returns `result`. Subclasses implement it."""
        raise NotImplementedError

    def result_meta(self, result: Any, state: str, traceback: Any, request: Any) -> dict[str, Any]:
        """The dict Celery stores for a state (without task_id), as Celery builds it."""
        meta: dict[str, Any] = self._get_result_meta(  # type: ignore[attr-defined]
            result=result, state=state, traceback=traceback, request=request
        )
        return meta

    @property
    def max_value_size(self) -> int:
        """The largest string value Celery lets its Redis backend store."""
        size: int = self._MAX_STR_VALUE_SIZE  # type: ignore[attr-defined]
        return size


# ---- Celery: the result subscription made when a task is published -----------------


class NoSubscriptionOnTaskCall:
    """Mixin for a Redis result backend: publishing a task subscribes to nothing.

    Upstream: celery/app/base.py `Celery.send_task` calls
    `self.backend.on_task_call(producer, task_id)` unless `ignore_result`;
    celery/backends/redis.py `RedisBackend.on_task_call(producer, task_id)` then
    subscribes to the task's result channel (`result_consumer.consume_from`).
    `celery/backends/base.py` `Backend.on_task_call` is the no-op default.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do nothing: results are read from their keys, never awaited."""


# ---- Celery: a retry's max_retries kept on the task object ---------------------------

#: The attribute `Task.retry(max_retries=N)` leaves on the task, and autoretry reads.
OVERRIDE_MAX_RETRIES = "override_max_retries"


class RetryLimitPerCall:
    """Mixin for a Task: a `retry(max_retries=N)` limits that one call, in that thread.

    Upstream: celery/app/task.py `Task.retry` does `self.override_max_retries =
    max_retries` when given one; celery/app/autoretry.py then passes
    `task.override_max_retries` as max_retries to every later autoretry for as long as
    the attribute exists, and deletes it only on a path a raising retry never reaches.
    The task object is shared by every call in the process and every thread of a thread
    pool, so one call's limit became every later call's (send_email's lease wait, which
    passes its own retries + 1, made the next e-mails give up after one retry). Here the
    attribute lives in a thread-local, per task, and `forget_retry_limit` drops it when
    the retry that set it returns or raises.
    """

    _retry_limits = threading.local()

    @property
    def override_max_retries(self) -> int:
        """The limit the current call's retry was given (AttributeError when none)."""
        limits: dict[int, int] = getattr(self._retry_limits, "by_task", {})
        if id(self) not in limits:
            raise AttributeError(OVERRIDE_MAX_RETRIES)
        return limits[id(self)]

    @override_max_retries.setter
    def override_max_retries(self, value: int) -> None:
        if not hasattr(self._retry_limits, "by_task"):
            self._retry_limits.by_task = {}
        self._retry_limits.by_task[id(self)] = value

    @override_max_retries.deleter
    def override_max_retries(self) -> None:
        getattr(self._retry_limits, "by_task", {}).pop(id(self), None)

    def forget_retry_limit(self) -> None:
        """Drop the current thread's limit for this task."""
        getattr(self._retry_limits, "by_task", {}).pop(id(self), None)


# ---- Celery: the worker's buffered task events -------------------------------------


def flush_events(consumer: Any) -> None:
    """Publish the task events the worker's consumer has buffered, now.

    Upstream: celery/worker/consumer/consumer.py `Consumer._flush_events()` (flushes
    `event_dispatcher` if there is one), which `Consumer.on_send_event_buffered` (the
    `on_send_buffered` callback celery/worker/consumer/events.py gives the
    EventDispatcher when the worker has an event loop) schedules with `call_soon`.
    """
    consumer._flush_events()


# ---- Celery: the remote-control command table --------------------------------------


def control_commands() -> dict[str, Callable[..., Any]]:
    """The worker's remote-control commands (name -> handler); changes apply in place.

    Upstream: celery/worker/control.py `Panel.data`, the class-level dict that
    `Panel.register` fills; celery/worker/pidbox.py `Pidbox` hands that same dict
    (not a copy) to the mailbox node as `handlers`, so an entry replaced before the
    worker starts is what the worker answers with.
    """
    # Imported here: only workers need it, and it pulls in the worker's state module.
    from celery.worker.control import Panel

    return Panel.data


# ---- kombu: the Redis key layout the reconciler, the audit and the API read --------

#: kombu/transport/redis.py `Channel.unacked_key`: hash delivery tag -> JSON
#: [message, exchange, routing key] of each message delivered and not acknowledged.
UNACKED_KEY = "unacked"
#: `Channel.unacked_index_key`: sorted set delivery tag -> Unix time of delivery.
UNACKED_INDEX_KEY = "unacked_index"
#: `Channel.unacked_mutex_key`: the lock of the visibility-timeout sweep.
UNACKED_MUTEX_KEY = "unacked_mutex"
#: `Channel.keyprefix_queue` ('_kombu.binding.%s') without its %s: a set per exchange.
BINDING_KEY_PREFIX = "_kombu.binding."
#: kombu keeps one list per priority step (`PRIORITY_STEPS`, `Channel.priority_steps`);
#: step 0 is the queue's own name, step n is `queue + Channel.sep + str(n)`
#: (`Channel._q_for_pri`), and 0 is served first.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEPARATOR = "\x06\x16"
#: celery/backends/base.py `BaseKeyValueStoreBackend.task_keyprefix`: result keys.
RESULT_KEY_PREFIX = "celery-task-meta-"


def priority_lists(queue: str) -> list[str]:
    """The Redis lists that together hold one queue's waiting messages."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


def unacked_message(raw: bytes | str) -> dict[str, Any] | None:
    """The message of an `UNACKED_KEY` entry, None if unreadable.

    Upstream: kombu/transport/redis.py `QoS.append` stores
    `dumps([message._raw, exchange, routing_key])`.
    """
    try:
        message = json.loads(raw)[0]
    except (ValueError, IndexError, KeyError, TypeError):
        return None
    return message if isinstance(message, dict) else None
