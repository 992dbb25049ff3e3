"""Reading what Redis returns: kombu messages' task ids, and replies as text."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def message_ids(raw_messages: Iterable[bytes | str]) -> Iterator[str]:
    """Task ids of raw queue items (kombu's JSON messages); unreadable ones are skipped."""
    for raw in raw_messages:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        yield from ids_of([message])


def ids_of(messages: Iterable[Any]) -> Iterator[str]:
    """Task ids (header `id`) of decoded kombu messages."""
    for message in messages:
        headers = message.get("headers") if isinstance(message, dict) else None
        if isinstance(headers, dict) and isinstance(headers.get("id"), str):
            yield headers["id"]


def redis_texts(items: Iterable[Any]) -> list[str]:
    """Redis replies (bytes) as strings."""
    return [i.decode() if isinstance(i, bytes) else str(i) for i in items]
