"""E-mail end to end on real parts: the API, Redis, a thread-pool worker and the mailbox.

The mailbox runs as its own process and the worker talks real SMTP to it; its fault
switch makes the SMTP conversation refuse or crawl, so retries and give-ups are
exercised against a real server.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from conveyor_core.celery_app import create_app
from conveyor_core.celery_internals import priority_lists
from tests.helpers import ROOT, task_outcome, wait_for
from tests.integration.conftest import RedisServer, api_for

pytestmark = pytest.mark.integration

BROKER_DB, RESULT_DB = 8, 9
MAX_RETRIES = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, int]]:
    """The mailbox service as a process: (HTTP client, SMTP port)."""
    smtp_port, http_port = _free_port(), _free_port()
    password = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "MAILBOX_SMTP_PORT": str(smtp_port),
        "MAILBOX_HTTP_PORT": str(http_port),
        "MAILBOX_DATA_DIR": str(tmp_path_factory.mktemp("mailbox")),
        "MAILBOX_USER": "tests",
        "MAILBOX_PASSWORD": password,
        # These tests make the mailbox refuse and stall mail on purpose.
        "MAILBOX_FAULTS": "true",
    }
    log = (tmp_path_factory.mktemp("mailbox-log") / "mailbox.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor_mailbox.server"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{http_port}", timeout=10, auth=("tests", password)
    )
    try:
        wait_for(lambda: client.get("/healthz").status_code == 200, 30, "the mailbox")
        yield client, smtp_port
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@pytest.fixture(scope="module")
def email_worker(start_worker, mailbox: tuple[httpx.Client, int]):
    """A thread-pool worker on the email queue, sending to the mailbox."""
    _, smtp_port = mailbox
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "EMAIL_FROM": "Conveyor tests <tests@example.com>",
        "EMAIL_RETRY_BACKOFF": "1",  # Celery counts whole seconds
        "EMAIL_RETRY_BACKOFF_MAX": "1",
        "EMAIL_MAX_RETRIES": str(MAX_RETRIES),
        "EMAIL_SEND_LEASE": "10",
        "VISIBILITY_TIMEOUT": "60",
        "TASK_TIME_LIMIT": "30",
        "TASK_SOFT_TIME_LIMIT": "25",
        "MAX_COUNTDOWN": "20",
    }
    return start_worker(
        BROKER_DB, RESULT_DB, extra_env=env, pool="threads", queues="email", concurrency=8
    )


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, email_worker):
    """The producer API on the e-mail test's databases."""
    return api_for(redis_server, BROKER_DB, RESULT_DB)


@pytest.fixture()
def inbox(mailbox: tuple[httpx.Client, int]) -> httpx.Client:
    """The mailbox's HTTP client, emptied and without faults."""
    client, _ = mailbox
    assert client.delete("/api/messages").status_code == 204
    assert client.delete("/api/faults").status_code == 204
    return client


@pytest.fixture(scope="module")
def celery(redis_server: RedisServer) -> Celery:
    """A Celery app on the test's databases, to publish copies of a task by hand."""
    return create_app(redis_server.settings(BROKER_DB, RESULT_DB))


def _send(api, **body: Any) -> str:
    response = api.post("/api/v1/emails", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_an_email_arrives_once_with_its_parts(api, inbox: httpx.Client) -> None:
    task_id = _send(
        api,
        to=["ada@example.com"],
        cc=["grace@example.com"],
        bcc=["secret@example.com"],
        subject="Quarterly report",
        text="Numbers attached.",
        html="<p>Numbers <b>attached</b>.</p>",
        attachments=[
            {
                "filename": "report.csv",
                "content_type": "text/csv",
                "content_base64": base64.b64encode(b"a,b\n1,2\n").decode(),
            }
        ],
    )
    outcome = task_outcome(api, task_id, timeout=60)
    assert outcome["state"] == "SUCCESS", outcome
    assert outcome["result"]["status"] == "sent"
    messages = inbox.get("/api/messages").json()["messages"]
    assert len(messages) == 1
    detail = inbox.get(f"/api/messages/{messages[0]['id']}").json()
    # Bcc is in the envelope, never in the headers.
    assert sorted(detail["to"]) == ["ada@example.com", "grace@example.com", "secret@example.com"]
    assert "secret@example.com" not in detail["raw"].split("\r\n\r\n")[0]
    assert detail["headers"]["Message-ID"] == outcome["result"]["message_id"]
    assert detail["text"].strip() == "Numbers attached."
    assert "<b>attached</b>" in detail["html"]
    assert detail["attachments"] == [
        {"filename": "report.csv", "content_type": "text/csv", "size": 8}
    ]


def test_a_template_is_rendered_with_its_context_escaped(api, inbox: httpx.Client) -> None:
    task_id = _send(
        api,
        to=["ada@example.com"],
        template="welcome",
        context={"name": "Ada <script>", "login_url": "https://example.com/login"},
    )
    assert task_outcome(api, task_id, timeout=60)["state"] == "SUCCESS"
    [summary] = inbox.get("/api/messages").json()["messages"]
    assert summary["subject"] == "Welcome to Conveyor, Ada <script>"
    detail = inbox.get(f"/api/messages/{summary['id']}").json()
    assert "Hello Ada <script>," in detail["text"]
    assert "Hello Ada &lt;script&gt;," in detail["html"]


def copies_in_broker(server: RedisServer, task_id: str) -> int:
    """Messages of the task waiting on the e-mail queue or held unacknowledged by a worker."""
    client = redis.Redis(host=server.host, port=server.port, password=server.password, db=BROKER_DB)
    raw = [m for key in priority_lists("email") for m in client.lrange(key, 0, -1)]
    raw += client.hvals("unacked")  # other tests may leave entries of their own here
    return sum(task_id.encode() in message for message in raw)


def test_copies_of_one_task_send_one_email(
    api, celery: Celery, inbox: httpx.Client, redis_server: RedisServer
) -> None:
    """Two messages with one task id (a redelivery), then one more copy after it ended."""
    kwargs = {"to": ["ada@example.com"], "subject": "Once", "text": "only once"}
    task_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    for _ in range(2):
        celery.send_task("conveyor.send_email", kwargs=kwargs, task_id=task_id, queue="email")
    wait_for(lambda: inbox.get("/api/stats").json()["accepted"] >= 1, 60, "the e-mail")
    celery.send_task("conveyor.send_email", kwargs=kwargs, task_id=task_id, queue="email")
    # Every copy ran and was acknowledged (acks late; a copy that found the lease taken
    # retried first): none waits or is held any more. Seen twice in a row, because a
    # message just popped by the worker is in neither place for a moment.
    seen_empty: list[bool] = []

    def drained() -> bool:
        seen_empty.append(copies_in_broker(redis_server, task_id) == 0)
        return seen_empty[-2:] == [True, True]

    wait_for(drained, 60, "every copy to be acknowledged")
    stats = inbox.get("/api/stats").json()
    assert stats["accepted"] == 1, stats  # SMTP deliveries, before any de-duplication


def test_concurrent_copies_with_one_key_send_one_email(
    api, celery: Celery, inbox: httpx.Client
) -> None:
    """Copies running at the same time: one holds the lease, the other waits for it."""
    # A slow server keeps the first copy inside its SMTP conversation while the rest start.
    assert inbox.put("/api/faults", json={"delay_ms": 300}).status_code == 200
    kwargs = {
        "to": ["ada@example.com"],
        "subject": "Concurrent",
        "text": "x",
        "idempotency_key": "concurrent-1",
    }
    results = [
        celery.send_task("conveyor.send_email", kwargs=kwargs, queue="email") for _ in range(3)
    ]
    outcomes = [r.get(timeout=60) for r in results]
    assert sorted(o["status"] for o in outcomes) == ["already_sent", "already_sent", "sent"]
    assert len({o["message_id"] for o in outcomes}) == 1
    assert inbox.get("/api/stats").json()["accepted"] == 1


def test_temporary_refusals_are_retried_until_sent(api, inbox: httpx.Client) -> None:
    assert inbox.put("/api/faults", json={"reject_next": 2, "code": 451}).status_code == 200
    task_id = _send(api, to=["ada@example.com"], subject="Persistent", text="x")
    outcome = task_outcome(api, task_id, timeout=60)
    assert outcome["state"] == "SUCCESS", outcome
    assert outcome["retries"] == 2
    stats = inbox.get("/api/stats").json()
    assert (stats["refused_messages"], stats["accepted"], stats["kept"]) == (2, 1, 1)


def test_a_permanent_refusal_fails_at_once_into_the_dead_letters(api, inbox: httpx.Client) -> None:
    body = {"reject_recipients": ["nobody@example.com"]}
    assert inbox.put("/api/faults", json=body).status_code == 200
    task_id = _send(api, to=["nobody@example.com"], subject="Bounce", text="x")
    outcome = task_outcome(api, task_id, timeout=60)
    assert outcome["state"] == "FAILURE"
    assert outcome["retries"] == 0
    assert outcome["error"]["type"] == "EmailRejectedError"
    assert "recipient 1: 550" in outcome["error"]["message"]
    assert "@" not in outcome["error"]["message"]  # no personal data in errors and logs
    entries = api.get("/api/v1/dead-letters").json()["entries"]
    assert any(e["task_id"] == task_id and e["reason"] == "failed" for e in entries), entries
    assert inbox.get("/api/stats").json()["accepted"] == 0


def test_retries_run_out_with_a_clear_error(api, inbox: httpx.Client) -> None:
    assert inbox.put("/api/faults", json={"reject_next": 100}).status_code == 200
    task_id = _send(api, to=["ada@example.com"], subject="Never", text="x")
    outcome = task_outcome(api, task_id, timeout=90)
    assert outcome["state"] == "FAILURE"
    assert outcome["retries"] == MAX_RETRIES
    assert outcome["error"]["type"] == "EmailDeferredError"
    assert outcome["error"]["message"].startswith(f"gave up after {MAX_RETRIES} retries: ")
    assert "451" in outcome["error"]["message"]
    assert inbox.get("/api/faults").json()["refused_messages"] == MAX_RETRIES + 1


def test_a_partly_refused_email_goes_to_the_others(api, inbox: httpx.Client) -> None:
    body = {"reject_recipients": ["nobody@example.com"]}
    assert inbox.put("/api/faults", json=body).status_code == 200
    task_id = _send(api, to=["ada@example.com", "nobody@example.com"], subject="Some", text="x")
    outcome = task_outcome(api, task_id, timeout=60)
    assert outcome["state"] == "SUCCESS"
    assert outcome["result"]["recipients"] == 1
    assert outcome["result"]["refused"] == ["550 5.1.1 No such recipient (mailbox fault switch)"]
    [summary] = inbox.get("/api/messages").json()["messages"]
    assert summary["to"] == ["ada@example.com"]


def test_the_rate_limit_spaces_emails_out(
    start_worker, redis_server: RedisServer, mailbox: tuple[httpx.Client, int], inbox
) -> None:
    """EMAIL_RATE_LIMIT=2/s on a worker of its own: six e-mails take over two seconds."""
    _, smtp_port = mailbox
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "EMAIL_RATE_LIMIT": "2/s"}
    start_worker(10, 11, extra_env=env, pool="threads", queues="email", concurrency=8)
    limited = api_for(redis_server, 10, 11)
    ids = [
        _send(limited, to=[f"r{i}@example.com"], subject=f"rate {i}", text="x") for i in range(6)
    ]
    for task_id in ids:
        assert task_outcome(limited, task_id, timeout=60)["state"] == "SUCCESS"
    times = sorted(
        datetime.fromisoformat(m["date"]) for m in inbox.get("/api/messages").json()["messages"]
    )
    assert len(times) == 6
    # A token bucket of 2 per second: five waits of about half a second after the first.
    assert (times[-1] - times[0]).total_seconds() >= 2.0
