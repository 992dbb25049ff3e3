"""The mailbox's store, fault switch and HTTP API, without SMTP (the integration tests
speak SMTP to it)."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from conveyor_mailbox.faults import FaultSwitch
from conveyor_mailbox.server import build_http_app
from conveyor_mailbox.store import Store


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
    client = TestClient(build_http_app(store, faults))
    listed = client.get("/api/messages").json()
    assert listed["count"] == 2 and listed["messages"][0]["subject"] == "Welcome"
    assert client.get("/api/messages?to=ADA@example.com").json()["count"] == 1
    assert client.get("/api/messages?subject=invoice").json()["count"] == 1
    found = client.get("/api/messages", params={"header": "Message-ID:<8@x>"}).json()
    assert [m["subject"] for m in found["messages"]] == ["Welcome"]
    bad = client.get("/api/messages?header=nocolon")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "header"
    detail = client.get(f"/api/messages/{listed['messages'][1]['id']}").json()
    assert detail["text"].strip() == "body of Invoice 7"
    assert client.get("/api/messages/999").status_code == 404
    assert "Invoice 7" in client.get("/").text
    assert "Welcome" not in client.get("/?to=ada@example.com").text
    put = client.put("/api/faults", json={"reject_next": 3, "delay_ms": 5})
    assert put.status_code == 200 and faults.settings.reject_next == 3
    refused = client.put("/api/faults", json={"code": 250})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "code"
    assert client.delete("/api/faults").status_code == 204 and faults.settings.reject_next == 0
    assert client.delete("/api/messages").status_code == 204
    assert client.get("/api/stats").json()["kept"] == 0
