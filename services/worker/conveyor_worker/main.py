"""Entry point of `celery -A conveyor_worker.main worker`: the app with its tasks."""

from conveyor_core.celery_app import app
from conveyor_worker import tasks
from conveyor_worker.heartbeat import Heartbeat

app.steps["consumer"].add(Heartbeat)
# Messages that cannot run are dead-lettered before Celery drops them.
app.conf.worker_consumer = "conveyor_worker.dead_lettering:DeadLetteringConsumer"

__all__ = ["app", "tasks"]
