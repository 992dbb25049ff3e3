"""Entry point of `celery -A conveyor_worker.main worker`: the app with its tasks."""

import logging
from typing import Any

from celery.signals import after_setup_logger, worker_init

from conveyor_core.celery_app import app
from conveyor_core.settings import get_settings, get_worker_settings
from conveyor_worker import remote_control, rescue, tasks
from conveyor_worker.heartbeat import Heartbeat

app.steps["consumer"].add(Heartbeat)
# Messages that cannot run are dead-lettered before Celery drops them; task events are
# published in batches.
app.conf.worker_consumer = "conveyor_worker.consumer:WorkerConsumer"
# Messages kombu cannot restore at shutdown go to the rescue volume, as JSON.
rescue.install()
# Broker clients may read state and revoke tasks, not stop or reshape workers.
remote_control.restrict()


@worker_init.connect
def _apply_email_rate_limit(**_: Any) -> None:
    """Cap send_email per worker at EMAIL_RATE_LIMIT.

    Read when the worker starts: the image's import check runs without settings.
    """
    limit = get_worker_settings().email_rate_limit
    if limit:
        tasks.send_email.rate_limit = limit


@worker_init.connect
def _register_test_tasks(**_: Any) -> None:
    """The test tasks (`crash`, `tally`) exist only with CONVEYOR_TEST_TASKS=true.

    Registered before the pool starts, so every child process has them.
    """
    if get_settings().test_tasks:
        tasks.register_test_tasks()


#: Celery's per-task log lines: "Task ... received" and "Task ... succeeded in ...".
TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


@after_setup_logger.connect
def _quiet_task_lines(**_: Any) -> None:
    """Without WORKER_LOG_TASKS, per-task INFO lines are left out (warnings still show)."""
    if not get_settings().worker_log_tasks:
        for name in TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


__all__ = ["app", "rescue", "tasks"]
