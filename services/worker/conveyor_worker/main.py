"""Entry point of `celery -A conveyor_worker.main worker`: the app with its tasks."""

import logging
from typing import Any

from celery.signals import after_setup_logger, worker_init

from conveyor_core.celery_app import app
from conveyor_core.settings import get_settings, get_worker_settings
from conveyor_worker import remote_control, rescue, tasks
from conveyor_worker.email_sending import retry_options
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
def _register_tasks(**_: Any) -> None:
    """Register the tasks of the task packages the settings name (and test tasks if on).

    Done when the worker starts, before the pool forks, so every child process has them
    (the image's build-time import check runs without settings). send_email gets its
    retries and its per-worker cap (EMAIL_RATE_LIMIT) from the settings.
    """
    settings = get_worker_settings()
    email = retry_options(settings)
    if settings.email_rate_limit:
        email["rate_limit"] = settings.email_rate_limit
    tasks.register_catalog(settings, {"send_email": email})


#: Celery's per-task log lines: "Task ... received" and "Task ... succeeded in ...".
TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


@after_setup_logger.connect
def _quiet_task_lines(**_: Any) -> None:
    """Without WORKER_LOG_TASKS, per-task INFO lines are left out (warnings still show)."""
    if not get_settings().worker_log_tasks:
        for name in TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


__all__ = ["app", "rescue", "tasks"]
