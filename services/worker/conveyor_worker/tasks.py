"""Task implementations. Names, queues and argument schemas come from the catalogue."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Task, current_task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from conveyor_core.catalog import TaskSpec, catalog_for
from conveyor_core.celery_app import app
from conveyor_core.email_schema import EmailParams
from conveyor_core.errors import TaskFailedError
from conveyor_worker.dead_lettering import guard
from conveyor_worker.email_sending import send_once
from conveyor_worker.lifecycle import ProgressReporter
from conveyor_worker.tally import TALLY_EXECUTED, TALLY_RUNS, tally_client

#: What a publish raises when the broker cannot be reached (kombu wraps redis-py's).
BROKER_UNREACHABLE = (OperationalError, redis.ConnectionError, redis.TimeoutError, OSError)


class CatalogTask(Task[Any, Any]):
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


def catalog_task(name: str) -> Callable[[Callable[..., Any]], CatalogTask]:
    """Register a function as the catalogue task `name`, with its route and schema."""
    spec = catalog_for(test_tasks=True)[name]
    return app.task(name=spec.celery_name, base=CatalogTask, spec=spec, queue=spec.queue)


@catalog_task("add")
def add(x: float, y: float) -> float:
    """Return x + y."""
    return x + y


@catalog_task("mul")
def mul(x: float, y: float) -> float:
    """Return x * y."""
    return x * y


@catalog_task("xsum")
def xsum(numbers: list[float]) -> float:
    """Return the sum of the numbers."""
    return sum(numbers)


@catalog_task("noop")
def noop() -> None:
    """Do nothing."""


@catalog_task("sleep")
def sleep(seconds: float) -> float:
    """Sleep, then return how long."""
    time.sleep(seconds)
    return seconds


@catalog_task("progress")
def progress(steps: int, delay: float) -> dict[str, int]:
    """Work through `steps` steps of `delay` seconds, reporting progress after each."""
    report = ProgressReporter(progress, steps)
    for step in range(1, steps + 1):
        time.sleep(delay)
        report(step, f"step {step} of {steps}")
    return {"steps": steps}


@catalog_task("fail")
def fail(message: str) -> None:
    """Fail on purpose."""
    raise TaskFailedError(message)


@catalog_task("send_email")
def send_email(**fields: Any) -> dict[str, Any]:
    """Send one e-mail over SMTP: once per idempotency key, retried while it may pass."""
    return send_once(send_email, EmailParams.model_validate(fields))


def crash() -> None:
    """Kill the process running this task: a poison message, quarantined after a few tries."""
    os.kill(os.getpid(), signal.SIGKILL)


def tally(delay: float) -> int:
    """Count this execution of this task id in the tally store; return the count so far."""
    time.sleep(delay)
    task_id = current_task.request.id or ""
    pipe = tally_client().pipeline(transaction=True)
    pipe.sadd(TALLY_EXECUTED, task_id)
    pipe.hincrby(TALLY_RUNS, task_id, 1)
    _, runs = pipe.execute()
    return int(runs)


def register_test_tasks() -> None:
    """Register `crash` and `tally`: only where CONVEYOR_TEST_TASKS is on.

    A worker without them answers a `crash` message as an unregistered task instead of
    dying for it; the integration and chaos stacks switch them on.
    """
    catalog_task("crash")(crash)
    catalog_task("tally")(tally)
