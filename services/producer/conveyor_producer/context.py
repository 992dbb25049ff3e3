"""What the route modules share: settings, the Celery app, Redis clients, the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from conveyor_core.catalog import TaskSpec
from conveyor_core.celery_app import create_app
from conveyor_core.settings import ProducerSettings, SubmitterSettings
from conveyor_core.task_packages import load_catalog
from conveyor_producer.ledger import Ledger
from conveyor_producer.results import backend_url


@dataclass(frozen=True)
class Context:
    """Built once per process by `create_api`, passed to each router builder."""

    settings: ProducerSettings
    celery: Celery
    broker: redis.Redis
    ledger: Ledger
    #: The tasks this producer accepts: those of its task packages (`load_catalog`).
    catalog: dict[str, TaskSpec]


def submission_parts(
    settings: SubmitterSettings,
) -> tuple[Celery, redis.Redis, Ledger, dict[str, TaskSpec]]:
    """The Celery app, the broker's Redis client, the ledger and the catalogue.

    The API's and an in-process submitter's (conveyor_producer.direct), built alike.
    """
    celery = create_app(settings)
    celery.conf.update(result_backend=backend_url(settings.result_backend_url))
    # One immediate retry on a fresh connection (after a Redis restart the pooled ones are
    # dead), then fail: a client gets its 503 within about two socket timeouts.
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_socket_timeout / 2,
        "socket_timeout": settings.redis_socket_timeout,
        "health_check_interval": 25,
        "retry": Retry(NoBackoff(), 1),
    }
    broker = redis.Redis.from_url(settings.broker_url, **options)
    results = redis.Redis.from_url(settings.result_backend_url, **options)
    ledger = Ledger(
        results,
        ttl=settings.result_expires,
        recent_max=settings.recent_max,
        revoke_ttl=settings.revoke_ttl,
    )
    return celery, broker, ledger, load_catalog(settings)
