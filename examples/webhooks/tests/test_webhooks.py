"""The example's own tests: the task against a real receiver on a loopback port."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from webhook_tasks.receiver import Inbox, serve
from webhook_tasks.signing import sign, verify
from webhook_tasks.tasks import SECRET_VARIABLE, ReceiverUnavailableError, deliver_webhook

from conveyor import TaskFailedError, definition_of

SECRET = "a-shared-secret-for-the-tests"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)


def receiver(inbox: Inbox, secret: str = SECRET) -> Iterator[str]:
    server = serve(0, inbox, secret)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox(fail_first=0)


@pytest.fixture
def url(inbox: Inbox) -> Iterator[str]:
    yield from receiver(inbox)


def test_a_delivery_arrives_signed_and_is_kept_once(url: str, inbox: Inbox) -> None:
    result = deliver_webhook(url, "order.paid", {"order": 7})
    assert result["status"] == 204
    [kept] = inbox.listing()
    assert kept == {
        "id": result["webhook_id"],
        "attempts": 1,
        "event": "order.paid",
        "payload": {"order": 7},
    }


def test_a_5xx_is_raised_for_a_retry(inbox: Inbox, url: str) -> None:
    inbox.fail_first = 1
    with pytest.raises(ReceiverUnavailableError, match="503"):
        deliver_webhook(url, "order.paid", {})
    assert inbox.listing() == []


def test_a_refusal_fails_for_good() -> None:
    wrong = Inbox(fail_first=0)
    for url in receiver(wrong, secret="another-secret-entirely"):
        with pytest.raises(TaskFailedError, match="401"):
            deliver_webhook(url, "order.paid", {})


def test_an_unreachable_receiver_is_a_transport_error() -> None:
    with pytest.raises(httpx.TransportError):
        deliver_webhook("http://127.0.0.1:9/hooks", "order.paid", {})


def test_no_secret_no_delivery(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, "short")
    with pytest.raises(TaskFailedError, match=SECRET_VARIABLE):
        deliver_webhook(url, "order.paid", {})


def test_signatures_bind_the_body_and_the_time() -> None:
    header = sign(SECRET, b'{"a":1}', timestamp=1_000_000)
    assert verify(SECRET, b'{"a":1}', header, now=1_000_010)
    assert not verify(SECRET, b'{"a":2}', header, now=1_000_010)  # body changed
    assert not verify("another-secret-entirely", b'{"a":1}', header, now=1_000_010)
    assert not verify(SECRET, b'{"a":1}', header, now=1_000_000 + 301)  # a replay
    assert not verify(SECRET, b'{"a":1}', "garbage")


def test_the_retry_policy_is_celerys_own() -> None:
    definition = definition_of(deliver_webhook)
    assert definition is not None
    options = definition.options
    assert options["autoretry_for"] == (ReceiverUnavailableError, httpx.TransportError)
    assert (options["retry_backoff"], options["retry_backoff_max"], options["max_retries"]) == (
        1,
        30,
        5,
    )
    schema = definition.spec.json_schema()
    assert schema["required"] == ["url", "event", "payload"]
