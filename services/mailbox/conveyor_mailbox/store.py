"""The mailbox's message store: bounded, newest first, on disk when given a folder.

Each message is two files, `<id>.eml` (as received) and `<id>.json` (envelope and the
headers the list shows), written before the SMTP server answers 250, so a message the
client saw accepted survives a restart. The oldest messages go once the store is full.

Like a receiving mail system, the store keeps one copy per Message-ID: a copy that
arrives again (a sender retrying after a crash) is counted and dropped.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

_HEADERS = BytesHeaderParser(policy=policy.default)


@dataclass
class StoredMessage:
    """What the list shows of one received message."""

    id: int
    sender: str
    recipients: list[str]
    subject: str
    message_id: str
    received: str
    size: int
    headers: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The message as listed by GET /api/messages."""
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.recipients,
            "subject": self.subject,
            "message_id": self.message_id,
            "date": self.received,
            "size": self.size,
        }

    def matches(self, to: str | None, subject: str | None, header: tuple[str, str] | None) -> bool:
        """Whether the message fits a search (every given criterion, case-insensitive)."""
        if to is not None and to.lower() not in (r.lower() for r in self.recipients):
            return False
        if subject is not None and subject.lower() not in self.subject.lower():
            return False
        if header is not None:
            name, value = header
            return value.lower() in self.headers.get(name.lower(), "").lower()
        return True


@dataclass
class Counters:
    """What the mailbox has seen since it started."""

    accepted: int = 0
    duplicates_dropped: int = 0


class Store:
    """Received messages, newest first, at most `limit` of them."""

    def __init__(self, limit: int, folder: Path | None = None, drop_duplicates: bool = True):
        self.limit = limit
        self.folder = folder
        self.drop_duplicates = drop_duplicates
        self.counters = Counters()
        self._messages: OrderedDict[int, StoredMessage] = OrderedDict()
        self._raw: dict[int, bytes] = {}  # only without a folder
        self._by_message_id: dict[str, int] = {}
        self._load()
        self._ids = itertools.count(max(self._messages, default=0) + 1)

    def _load(self) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for meta in sorted(self.folder.glob("*.json"), key=lambda p: int(p.stem)):
            try:
                message = StoredMessage(**json.loads(meta.read_text()))
            except (ValueError, TypeError):
                continue  # a torn write from a crash: the .eml without its index entry
            self._remember(message)
        self._evict()

    def add(self, sender: str, recipients: list[str], raw: bytes) -> StoredMessage | None:
        """Keep a message; None when it is a copy of one already kept (same Message-ID)."""
        self.counters.accepted += 1
        parsed = _HEADERS.parsebytes(raw)
        message_id = str(parsed.get("Message-ID", "")).strip()
        if self.drop_duplicates and message_id and message_id in self._by_message_id:
            self.counters.duplicates_dropped += 1
            return None
        message = StoredMessage(
            id=next(self._ids),
            sender=sender,
            recipients=recipients,
            subject=str(parsed.get("Subject", "")),
            message_id=message_id,
            received=datetime.now(UTC).isoformat(),
            size=len(raw),
            headers={k.lower(): str(v) for k, v in parsed.items()},
        )
        self._write(message, raw)
        self._remember(message)
        self._evict()
        return message

    def _write(self, message: StoredMessage, raw: bytes) -> None:
        if self.folder is None:
            self._raw[message.id] = raw
            return
        # The .eml first, the index entry last: an entry always has its message.
        for suffix, data in ((".eml", raw), (".json", json.dumps(asdict(message)).encode())):
            final = self.folder / f"{message.id}{suffix}"
            temporary = final.with_suffix(suffix + ".tmp")
            temporary.write_bytes(data)
            os.replace(temporary, final)

    def _remember(self, message: StoredMessage) -> None:
        self._messages[message.id] = message
        if message.message_id:
            self._by_message_id.setdefault(message.message_id, message.id)

    def _evict(self) -> None:
        while len(self._messages) > self.limit:
            oldest = next(iter(self._messages))
            self._forget(oldest)

    def _forget(self, message_id: int) -> None:
        message = self._messages.pop(message_id)
        if self._by_message_id.get(message.message_id) == message_id:
            del self._by_message_id[message.message_id]
        self._raw.pop(message_id, None)
        if self.folder is not None:
            for suffix in (".json", ".eml"):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / f"{message_id}{suffix}").unlink()

    def search(
        self,
        to: str | None = None,
        subject: str | None = None,
        header: tuple[str, str] | None = None,
    ) -> list[StoredMessage]:
        """Messages fitting every given criterion, newest first."""
        return [m for m in reversed(self._messages.values()) if m.matches(to, subject, header)]

    def __len__(self) -> int:
        return len(self._messages)

    def get(self, message_id: int) -> StoredMessage | None:
        """One message's summary by id."""
        return self._messages.get(message_id)

    def raw(self, message_id: int) -> bytes | None:
        """The message as received."""
        if message_id not in self._messages:
            return None
        if self.folder is None:
            return self._raw.get(message_id)
        try:
            return (self.folder / f"{message_id}.eml").read_bytes()
        except FileNotFoundError:
            return None

    def parsed(self, message_id: int) -> EmailMessage | None:
        """The message parsed with the modern e-mail policy."""
        raw = self.raw(message_id)
        if raw is None:
            return None
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message

    def clear(self) -> None:
        """Forget every message and reset the counters (ids keep counting up)."""
        for message_id in list(self._messages):
            self._forget(message_id)
        self._by_message_id.clear()
        self.counters = Counters()
