"""Entry point of `celery -A conveyor_worker.main worker`: the app with its tasks."""

from conveyor_core.celery_app import app
from conveyor_worker import rescue, tasks
from conveyor_worker.heartbeat import Heartbeat

app.steps["consumer"].add(Heartbeat)
# Messages that cannot run are dead-lettered before Celery drops them.
app.conf.worker_consumer = "conveyor_worker.dead_lettering:DeadLetteringConsumer"
# Messages kombu cannot restore at shutdown go to the rescue volume, as JSON.
rescue.install()

__all__ = ["app", "rescue", "tasks"]
