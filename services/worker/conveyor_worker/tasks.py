"""How the workers run catalogue tasks: validated again, retried without loss, masked.

The tasks themselves are written in task packages (`conveyor_core.task_packages`);
`register_catalog` gives each its Celery task, built on `CatalogTask`.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from conveyor_core.catalog import TaskSpec
from conveyor_core.celery_app import app
from conveyor_core.celery_internals import RetryLimitPerCall
from conveyor_core.settings import Settings
from conveyor_core.task_packages import load_definitions
from conveyor_core.task_sdk import TaskDefinition
from conveyor_worker.dead_lettering import guard

#: What a publish raises when the broker cannot be reached (kombu wraps redis-py's).
BROKER_UNREACHABLE = (OperationalError, redis.ConnectionError, redis.TimeoutError, OSError)


class CatalogTask(RetryLimitPerCall, Task[Any, Any]):
    """A task that validates its arguments against its catalogue schema before running.

    Messages can reach Redis without going through the producer, so the worker does not
    trust them. A call that does not fit fails with `InvalidArgumentsError` (and is not
    retried: it would fail the same way).
    """

    spec: TaskSpec

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task with its arguments validated and passed by name.

        A poison message is quarantined and a republished copy of a finished task is
        skipped first (`dead_lettering.guard`).
        """
        guard(self)
        return super().__call__(**self.spec.bind(args, kwargs))

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's retry, except that a retry the broker could not take is not lost.

        Celery turns a failed publish of the retry into `Reject(requeue=False)`: with late
        acknowledgement the message is then dropped, and the task with it (an e-mail
        deferred by a 451 while Redis restarts was lost this way). Requeued instead, the
        message goes back to its queue, or stays unacknowledged until the visibility
        timeout brings it back if Redis is still down.
        """
        try:
            return self._retry_without_loss(*args, **kwargs)
        finally:
            # A max_retries given to this call limits this call only (RetryLimitPerCall).
            self.forget_retry_limit()

    def _retry_without_loss(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().retry(*args, **kwargs)
        except Reject as rejected:
            # celery-types does not declare Reject's attributes (reason, requeue).
            reason, requeue = getattr(rejected, "reason", None), getattr(rejected, "requeue", True)
            if isinstance(reason, BROKER_UNREACHABLE) and not requeue:
                raise Reject(reason, requeue=True) from rejected
            raise

    def apply_async(  # type: ignore[override]  # celery-types spells every option out
        self, args: Any = None, kwargs: Any = None, **options: Any
    ) -> Any:
        """Publish (a retry, a workflow step) with personal data masked in its repr."""
        for name, value in self.spec.repr_options(kwargs or {}).items():
            options.setdefault(name, value)
        return super().apply_async(args, kwargs, **options)


def register(definition: TaskDefinition, **overrides: Any) -> CatalogTask:
    """Register a task definition with Celery: its name, schema and options.

    Its queue is the catalogue router's (`celery_app.catalogue_router`), not a `queue`
    attribute (deprecated by Celery); a retry goes back to the queue it came from.
    """
    spec = definition.spec
    registered: CatalogTask = app.task(
        name=spec.celery_name,
        base=CatalogTask,
        spec=spec,
        bind=definition.bind,
        **{**definition.options, **overrides},
    )(definition.function)
    return registered


def register_catalog(
    settings: Settings, overrides: dict[str, dict[str, Any]] | None = None
) -> dict[str, CatalogTask]:
    """Register every task the settings' packages define; the Celery tasks by public name.

    `overrides`: Celery options by task name that come from settings (send_email's
    retries), given here because Celery reads them when it registers the task.
    Raises `TaskPackageError` (naming the module and task) for a package that cannot be
    served; the start-up check reports the same before the worker gets here.
    """
    extra = overrides or {}
    return {
        name: register(d, **extra.get(name, {})) for name, d in load_definitions(settings).items()
    }
