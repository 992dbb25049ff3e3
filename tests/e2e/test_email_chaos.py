"""1,000 e-mails through the API while the mailbox refuses some, a worker is killed and
Redis restarts.

Each must arrive in the mailbox exactly once: none lost, none kept twice, and no more
copies dropped by Message-ID than e-mails the killed worker was in the middle of
sending (the one window send_records.py documents). `make chaos-email` runs the same.
"""

from __future__ import annotations

import pytest

from tests.chaos import emails

pytestmark = pytest.mark.e2e


def test_a_thousand_emails_arrive_once_each_despite_refusals_a_kill_and_redis() -> None:
    report = emails.run(emails=1000, refuse=100)
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
