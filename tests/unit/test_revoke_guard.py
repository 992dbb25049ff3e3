"""The worker's revoke check when Redis cannot answer it (dead_lettering.guard).

The check itself, on real workers and a real Redis, is in tests/integration/test_revoke.py.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import redis
from celery import Celery
from celery.exceptions import Reject

from conveyor_worker import dead_lettering, lifecycle
from conveyor_worker.tasks import CatalogTask
from tests.helpers import catalog


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_task_whose_revoke_cannot_be_checked_is_requeued_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = redis.Redis(port=closed_port(), socket_connect_timeout=0.5)
    monkeypatch.setattr(dead_lettering, "result_client", lambda: down)
    app = Celery("revoke-guard-test", set_as_current=False)
    ran = []

    @app.task(bind=True, base=CatalogTask, spec=catalog("noop"), shared=False)
    def noop(self: Any) -> None:
        ran.append(self.request.id)

    noop.push_request(id="unchecked-1", called_directly=False, is_eager=False, retries=0)
    try:
        with pytest.raises(Reject) as rejected:
            noop()
    finally:
        noop.pop_request()
    assert getattr(rejected.value, "requeue", None) is True
    assert ran == []


def test_a_requeued_task_stays_pending_for_the_reconciler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settled: list[str | None] = []
    monkeypatch.setattr(lifecycle, "settle", lambda task_id, **_: settled.append(task_id))
    monkeypatch.setattr(lifecycle, "record", lambda *_, **__: None)
    lifecycle._on_finished(task_id="a", state="REJECTED", retval=Reject("x", requeue=True))
    assert settled == []
    lifecycle._on_finished(task_id="b", state="REJECTED", retval=Reject("x", requeue=False))
    assert settled == ["b"]
