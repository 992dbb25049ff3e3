"""The chaos runs inside `make test`: faults meet work in flight, and nothing is lost.

`make chaos` and `make chaos-email` run the full suites (20,000 tasks and 10 worker
SIGKILLs; 1,000 e-mails); these are the same code with fewer tasks and faults. The three
runs share one compose project (`conveyor-chaos`), brought up once: the e-mail run
first, then the task run, then the negative control, which switches that project's
Redis to no persistence, runs the same faults, and must see a loss: it proves the suite
can.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos import emails
from tests.chaos import run as chaos

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[chaos.Stack]:
    """The chaos project, up for this module's runs (each sets what it needs)."""
    stack = chaos.Stack()
    stack.up(workers=3)
    try:
        yield stack
    finally:
        stack.down()


def test_a_thousand_emails_arrive_once_each_despite_refusals_a_kill_and_redis(
    stack: chaos.Stack,
) -> None:
    """1,000 e-mails while the mailbox refuses 100, a worker is killed and Redis restarts.

    Each must arrive exactly once: none lost, none kept twice, and no more copies dropped
    by Message-ID than e-mails the killed worker was in the middle of sending (the one
    window send_records.py documents).
    """
    report = emails.run(emails=1000, refuse=100, stack=stack)
    assert report.accepted == 1000
    # The kill and the Redis restart each met a submission in flight and unsent e-mails.
    assert report.faults == {"kill": 1, "restart": 1}, report.fault_log
    assert all(report.requests_in_flight) and all(report.unfinished), report.fault_log
    assert report.refused_by_fault == 100
    assert report.lost == 0, report.lost_sample
    assert report.received == 1000
    assert report.duplicates_kept == 0
    assert report.copies_dropped_by_message_id <= report.sending_when_killed, report
    assert report.problems() == []


def test_short_chaos_run_loses_no_task(stack: chaos.Stack) -> None:
    report = chaos.run(tasks=1500, kills=3, interval=3, delay=0.05, stall=150, stack=stack)
    assert report.accepted == 1500
    assert report.lost == 0, report.lost_sample
    assert report.executed == 1500
    # Every planned fault happened, each while a submission was in flight and accepted
    # tasks were unfinished; clients had to retry; tasks still ran after the last fault.
    assert report.faults == {"kill": 3, "scale": 2, "restart": 2}, report.fault_log
    assert all(report.requests_in_flight), report.fault_log
    assert all(report.unfinished), report.fault_log
    assert report.client_retries > 0, report.retries_after
    assert report.problems() == []


def test_negative_control_without_persistence_sees_a_loss(stack: chaos.Stack) -> None:
    """Redis without its append-only file, restarted under load: tasks must go missing."""
    # stall: the run ends once nothing new ran for 10 s. No worker is killed here, so no
    # task waits for the visibility timeout; what Redis lost is gone from every list and
    # from the ledger, so nothing brings it back later.
    report = chaos.run(
        tasks=400, kills=0, interval=3, delay=0.5, stall=10, persistence=False, stack=stack
    )
    assert report.accepted == 400
    assert report.faults == {"scale": 2, "restart": 2}, report.fault_log
    assert report.lost > 0, "the suite could not see the loss of a Redis without persistence"
    assert report.problems() == []
