"""A retry that the broker cannot take is requeued, not dropped (CatalogTask.retry)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Reject

from conveyor_worker.tasks import CatalogTask
from tests.helpers import catalog


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unreachable_app() -> Celery:
    """An app whose broker port is closed: every publish fails fast."""
    app = Celery("retry-test", broker=f"redis://127.0.0.1:{closed_port()}/0", set_as_current=False)
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_timeout = 0.5
    app.conf.task_publish_retry_policy = {"max_retries": 0}
    return app


def test_a_retry_the_broker_cannot_take_is_requeued(unreachable_app: Celery) -> None:
    @unreachable_app.task(bind=True, base=CatalogTask, spec=catalog("noop"), shared=False)
    def deferred(self: Any) -> None:
        raise self.retry(countdown=1)

    deferred.push_request(id="retry-1", called_directly=False, is_eager=False, retries=0)
    try:
        with pytest.raises(Reject) as rejected:
            deferred.run()
    finally:
        deferred.pop_request()
    # Celery's own retry raises Reject(requeue=False): the message would be dropped.
    assert getattr(rejected.value, "requeue", None) is True
