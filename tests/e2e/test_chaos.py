"""The short chaos run inside `make test`: faults while tasks run, and nothing is lost.

`make chaos` runs the full suite (20,000 tasks, 10 worker SIGKILLs); this is the same
code with fewer tasks and faults, on its own compose project (`conveyor-chaos`).
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
    # Every planned fault happened: three SIGKILLs, two scale changes, two restarts.
    assert report.faults == {"kill": 3, "scale": 2, "restart": 2}, report.fault_log
