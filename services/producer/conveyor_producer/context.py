"""What the route modules share: settings, the Celery app, Redis clients, the ledger."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery

from conveyor_core.catalog import TaskSpec
from conveyor_core.settings import ProducerSettings
from conveyor_producer.ledger import Ledger


@dataclass(frozen=True)
class Context:
    """Built once per process by `create_api`, passed to each router builder."""

    settings: ProducerSettings
    celery: Celery
    broker: redis.Redis
    ledger: Ledger
    #: The tasks this producer accepts: those of its task packages (`load_catalog`).
    catalog: dict[str, TaskSpec]
