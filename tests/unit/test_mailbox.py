"""The mailbox's store, fault switch and HTTP API, without SMTP (the integration tests
speak SMTP to it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.testclient import TestClient

from conveyor_core.settings import MailboxSettings
from conveyor_mailbox.faults import FaultSwitch
from conveyor_mailbox.server import build_http_app
from conveyor_mailbox.store import Store
from tests.helpers import MAILBOX_ROUTES

USER, PASSWORD = "admin", "a-generated-secret-0123456789"
#: Every page and API path, and one that does not exist: none answers an anonymous client.
PATHS = [
    *MAILBOX_ROUTES,
    # With the fault switch on (as in these tests), its other methods too.
    ("GET", "/api/faults"),
    ("DELETE", "/api/faults"),
]


def app(
    store: Store | None = None, faults: FaultSwitch | None = None, **options: bool
) -> Starlette:
    """The HTTP app with the test credentials."""
    return build_http_app(
        store or Store(limit=10), faults or FaultSwitch(), user=USER, password=PASSWORD, **options
    )


def client(application: Starlette, auth: tuple[str, str] = (USER, PASSWORD)) -> TestClient:
    """A client that logs in (basic auth) with `auth`."""
    http = TestClient(application)
    http.auth = auth
    return http


def raw(subject: str, message_id: str, to: str = "ada@example.com") -> bytes:
    return (
        f"From: a@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n\r\nbody of {subject}\r\n"
    ).encode()


def test_messages_survive_a_restart_and_the_oldest_go_first(tmp_path: Path) -> None:
    store = Store(limit=2, folder=tmp_path)
    for n in range(3):
        store.add("a@example.com", ["ada@example.com"], raw(f"s{n}", f"<{n}@x>"))
    assert [m.subject for m in store.search()] == ["s2", "s1"]
    reopened = Store(limit=2, folder=tmp_path)
    assert [m.subject for m in reopened.search()] == ["s2", "s1"]
    assert reopened.raw(3) == raw("s2", "<2@x>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.eml", "2.json", "3.eml", "3.json"]
    # New ids continue after the kept ones.
    added = reopened.add("a@example.com", ["b@example.com"], raw("s3", "<3@x>"))
    assert added is not None and added.id == 4


def test_a_second_copy_of_a_message_id_is_counted_and_dropped() -> None:
    store = Store(limit=10)
    assert store.add("a@example.com", ["ada@example.com"], raw("s", "<1@x>")) is not None
    assert store.add("a@example.com", ["ada@example.com"], raw("s", "<1@x>")) is None
    assert (len(store), store.counters.accepted, store.counters.duplicates_dropped) == (1, 2, 1)
    keeping = Store(limit=10, drop_duplicates=False)
    keeping.add("a@example.com", ["ada@example.com"], raw("s", "<1@x>"))
    keeping.add("a@example.com", ["ada@example.com"], raw("s", "<1@x>"))
    assert len(keeping) == 2


def test_the_fault_switch_refuses_the_next_n_then_lets_mail_through() -> None:
    faults = FaultSwitch()
    faults.settings = faults.settings.model_copy(update={"reject_next": 2})
    assert [faults.message_rejection() for _ in range(3)] == [
        "451 4.3.0 Try again later (mailbox fault switch)",
        "451 4.3.0 Try again later (mailbox fault switch)",
        None,
    ]
    assert faults.refused_messages == 2


def test_http_search_read_clear_and_faults() -> None:
    store, faults = Store(limit=10), FaultSwitch()
    store.add("a@example.com", ["ada@example.com"], raw("Invoice 7", "<7@x>"))
    store.add("a@example.com", ["bob@example.com"], raw("Welcome", "<8@x>", "bob@example.com"))
    http = client(app(store, faults, fault_switch=True))
    listed = http.get("/api/messages").json()
    assert listed["count"] == 2 and listed["messages"][0]["subject"] == "Welcome"
    assert http.get("/api/messages?to=ADA@example.com").json()["count"] == 1
    assert http.get("/api/messages?subject=invoice").json()["count"] == 1
    found = http.get("/api/messages", params={"header": "Message-ID:<8@x>"}).json()
    assert [m["subject"] for m in found["messages"]] == ["Welcome"]
    bad = http.get("/api/messages?header=nocolon")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "header"
    detail = http.get(f"/api/messages/{listed['messages'][1]['id']}").json()
    assert detail["text"].strip() == "body of Invoice 7"
    assert http.get("/api/messages/999").status_code == 404
    assert "Invoice 7" in http.get("/").text
    assert "Welcome" not in http.get("/?to=ada@example.com").text
    put = http.put("/api/faults", json={"reject_next": 3, "delay_ms": 5})
    assert put.status_code == 200 and faults.settings.reject_next == 3
    refused = http.put("/api/faults", json={"code": 250})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "code"
    assert http.delete("/api/faults").status_code == 204 and faults.settings.reject_next == 0
    assert http.delete("/api/messages").status_code == 204
    assert http.get("/api/stats").json()["kept"] == 0


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_every_page_and_api_path_refuses_anonymous_requests(method: str, path: str) -> None:
    anonymous = TestClient(app(fault_switch=True))
    response = anonymous.request(method, path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert "Conveyor mailbox" not in response.text  # nothing of the inbox shows


@pytest.mark.parametrize(
    "auth", [(USER, "wrong-password"), ("root", PASSWORD), (USER, ""), (USER + ":", PASSWORD)]
)
def test_wrong_credentials_are_refused(auth: tuple[str, str]) -> None:
    response = client(app(), auth).get("/api/messages")
    assert response.status_code == 401


def test_a_malformed_authorization_header_is_refused() -> None:
    for header in ("Basic !!!", "Basic", "Bearer x", f"basic {USER}:{PASSWORD}"):
        response = TestClient(app()).get("/", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_the_healthcheck_needs_no_credentials_and_the_right_ones_open_the_inbox() -> None:
    assert TestClient(app()).get("/healthz").json() == {"status": "ok"}
    assert "Conveyor mailbox" in client(app()).get("/").text


def test_the_fault_switch_does_not_exist_by_default() -> None:
    faults = FaultSwitch()
    http = client(app(faults=faults))
    for method in ("GET", "PUT", "DELETE"):
        response = http.request(method, "/api/faults", json={"reject_next": 5})
        assert response.status_code in {404, 405}, method
    assert faults.settings.reject_next == 0


def test_the_fault_switch_is_off_unless_a_test_setting_turns_it_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MAILBOX_FAULTS", "MAILBOX_USER", "CONVEYOR_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAILBOX_PASSWORD", PASSWORD)
    assert MailboxSettings().mailbox_faults is False
    monkeypatch.setenv("MAILBOX_FAULTS", "true")
    assert MailboxSettings().mailbox_faults is True


def test_the_mailbox_honours_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOG_LEVEL, as every role reads it (either case); INFO when unset."""
    monkeypatch.setenv("MAILBOX_PASSWORD", PASSWORD)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    assert MailboxSettings().log_level == "INFO"
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert MailboxSettings().log_level == "DEBUG"


@pytest.mark.parametrize("password", ["", "changeme", "short"])
def test_the_mailbox_refuses_a_weak_password_even_in_development(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    monkeypatch.setenv("CONVEYOR_ENV", "development")
    monkeypatch.setenv("MAILBOX_PASSWORD", password)
    with pytest.raises(ValidationError, match="MAILBOX_PASSWORD"):
        MailboxSettings()
