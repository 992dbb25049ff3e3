"""The producer's result backend: Redis, without a subscription per published task.

Celery's Redis backend subscribes to a Pub/Sub channel for every task it publishes
(`on_task_call`, overridden through `conveyor_core.celery_internals`), so that a later
`AsyncResult.get()` can wait without polling. The producer never blocks on a result:
it reads task state from the result key. The subscriptions would only pile up in every
gunicorn worker and make a publish fail on the result connection when Redis is down,
so this backend leaves them out.
"""

from conveyor_core.celery_internals import NoSubscriptionOnTaskCall
from conveyor_core.result_store import ConveyorRedisBackend
from conveyor_core.result_store import backend_url as _backend_url


class PublishOnlyRedisBackend(NoSubscriptionOnTaskCall, ConveyorRedisBackend):
    """RedisBackend that does not subscribe to results when a task is published."""


def backend_url(redis_url: str) -> str:
    """The `result_backend` value selecting this class for a Redis URL."""
    return _backend_url(redis_url, PublishOnlyRedisBackend)
