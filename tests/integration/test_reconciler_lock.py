"""The reconciler's pass lock: a pass that outlived its lock leaves the next holder's alone.

Reconciler A's lock expires mid-pass and reconciler B takes it; when A's pass ends, B's
lock must still be there, so a third replica cannot start a pass alongside B. (The old
SET NX + unconditional DELETE freed B's lock at the end of A's pass.)
"""

from __future__ import annotations

import threading

import pytest
import redis
from conveyor_reconciler.main import PassReport, Reconciler

from conveyor_core.ledger_keys import RECONCILER_LOCK
from conveyor_core.settings import ReconcilerSettings
from tests.helpers import wait_for
from tests.integration.conftest import RedisServer

pytestmark = pytest.mark.integration

BROKER_DB, RESULT_DB = 6, 7


def _reconciler(server: RedisServer) -> Reconciler:
    return Reconciler(server.settings(BROKER_DB, RESULT_DB, ReconcilerSettings))


def test_an_expired_pass_does_not_release_the_next_holders_lock(redis_server, caplog):
    results = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password, db=RESULT_DB
    )
    results.delete(RECONCILER_LOCK)
    first, second, third = (_reconciler(redis_server) for _ in range(3))
    second_in_pass, second_may_end = threading.Event(), threading.Event()
    passes: list[str] = []

    def second_pass(now: float, report: PassReport) -> None:
        passes.append("second")
        second_in_pass.set()
        assert second_may_end.wait(30)

    def first_pass(now: float, report: PassReport) -> None:
        passes.append("first")
        results.pexpire(RECONCILER_LOCK, 1)  # the first pass outlives its lock ...
        wait_for(lambda: not results.exists(RECONCILER_LOCK), 10, "the lock to expire")
        second_thread.start()  # ... and the second replica takes it
        assert second_in_pass.wait(30), "the second reconciler never got the lock"

    first._reconcile = first_pass  # type: ignore[method-assign]
    second._reconcile = second_pass  # type: ignore[method-assign]
    third._reconcile = lambda now, report: passes.append("third")  # type: ignore[method-assign]
    second_thread = threading.Thread(target=second.run_pass)
    try:
        first.run_pass()
        assert results.exists(RECONCILER_LOCK), "the first pass deleted the second's lock"
        third.run_pass()
        assert passes == ["first", "second"], "a third pass ran while the second held the lock"
        assert "outlasted" in caplog.text
    finally:
        second_may_end.set()
        second_thread.join(30)
    # The holder releases its own lock; then the next pass runs.
    assert not results.exists(RECONCILER_LOCK)
    third.run_pass()
    assert passes == ["first", "second", "third"]
