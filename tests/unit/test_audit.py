"""`make redis-audit`: key names sorted into kinds."""

import pytest

from conveyor_producer.audit import classify

QUEUES = frozenset({"default", "default\x06\x163"})


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("default", "queues"),
        ("default\x06\x163", "queues"),
        ("unacked", "unacked"),
        ("unacked_index", "unacked"),
        ("1b2c.reply.celery.pidbox", "pidbox replies"),
        ("_kombu.binding.celery.pidbox", "bindings"),
        ("celery-task-meta-5d1e", "results"),
        ("conveyor:task:5d1e", "ledger"),
        ("conveyor:pending", "pending submissions"),
        ("conveyor:dlq:entries", "dead letters"),
        ("conveyor:deliveries:5d1e:0", "delivery counters"),
        ("conveyor:revoked:5d1e", "revoke records"),
        ("conveyor:email:signup-42", "e-mail send records"),
        ("something-else", "other"),
    ],
)
def test_classify(name: str, kind: str) -> None:
    assert classify(name, QUEUES) == kind
