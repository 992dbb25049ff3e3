"""The Celery tutorial's app ("First steps with Celery"), every default kept.

Only the URLs differ: the tutorial's Redis is on localhost without a password; here it
is the stack's Redis (databases 2 and 3, apart from Conveyor's), with the bench's user.
Run as in the tutorial: `celery -A tasks worker`.
"""

import os

from celery import Celery

_REDIS = (
    f"redis://{os.environ.get('REDIS_USERNAME', '')}:{os.environ['REDIS_PASSWORD']}"
    f"@{os.environ.get('REDIS_HOST', 'redis')}:6379"
)

app = Celery("tasks", broker=f"{_REDIS}/2", backend=f"{_REDIS}/3")


@app.task
def noop() -> None:
    """Do nothing (the same task as Conveyor's `noop`)."""


@app.task
def add(x: float, y: float) -> float:
    """The tutorial's task."""
    return x + y
