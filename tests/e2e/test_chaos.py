"""The short chaos run inside `make test`: faults meet work in flight, and nothing is lost.

`make chaos` runs the full suite (20,000 tasks, 10 worker SIGKILLs); this is the same
code with fewer tasks and faults, on its own compose project (`conveyor-chaos`). The
negative control runs the same faults on a Redis without persistence and must see a loss:
it proves the suite can.
"""

from __future__ import annotations

import pytest

from tests.chaos import run as chaos

pytestmark = pytest.mark.e2e


def test_short_chaos_run_loses_no_task() -> None:
    report = chaos.run(tasks=1500, kills=3, interval=3, delay=0.05, stall=150)
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


def test_negative_control_without_persistence_sees_a_loss() -> None:
    """Redis without its append-only file, restarted under load: tasks must go missing."""
    report = chaos.run(tasks=400, kills=0, interval=3, delay=0.5, stall=20, persistence=False)
    assert report.accepted == 400
    assert report.faults == {"scale": 2, "restart": 2}, report.fault_log
    assert report.lost > 0, "the suite could not see the loss of a Redis without persistence"
    assert report.problems() == []
