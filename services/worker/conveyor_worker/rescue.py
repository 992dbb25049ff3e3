"""Messages kombu could not put back at shutdown survive on a volume, as JSON.

When a worker stops, kombu returns its unacknowledged messages to their queues. If Redis
does not answer at that moment, kombu's `QoS.restore_unacked_once` hands them to
`emergency_dump_state`, which pickles them into a temporary file: in a container that
is the /tmp tmpfs, gone with the container, and pickle besides. Here that function is
replaced: the messages are written as JSON to WORKER_RESCUE_DIR (the `worker-rescue`
volume, shared by the replicas), and a worker that starts puts them back on their queues
(marked redelivered, as kombu's own restore does) before deleting the file.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from conveyor_core.celery_internals import (
    kombu_emergency_dump,
    replace_emergency_dump,
    restore_message,
)
from conveyor_core.settings import get_settings

logger = logging.getLogger(__name__)


def rescue_dir() -> Path:
    """The folder of rescued messages (WORKER_RESCUE_DIR), read when first needed.

    Not at import: the image's build-time import check runs without settings.
    """
    return get_settings().worker_rescue_dir


def dump_messages(state: list[dict[str, Any]], *args: Any, **kwargs: Any) -> str:
    """Write unrestored messages as JSON into the rescue folder; returns the file's path.

    Falls back to kombu's own dump when the directory cannot be written: a pickle in
    /tmp is still better than nothing.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = rescue_dir()
    path = folder / f"{stamp}-{uuid.uuid4()}.json"
    partial = path.with_suffix(".partial")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(state))
        os.replace(partial, path)  # a reader never sees half a file
    except (OSError, TypeError, ValueError) as exc:
        logger.error("could not write %d message(s) to %s: %s", len(state), folder, exc)
        return kombu_emergency_dump(state, *args, **kwargs)
    logger.error(
        "saved %d unrestored message(s) to %s; the next worker requeues them", len(state), path
    )
    return str(path)


def install() -> None:
    """Make kombu's shutdown restore dump into the rescue folder, as JSON.

    Not reached with kombu 5.7's Redis transport (see
    `conveyor_core.celery_internals.replace_emergency_dump`); kept for a kombu that
    hands unrestored messages to the dump again.
    """
    replace_emergency_dump(dump_messages)


def _claim(path: Path) -> Path | None:
    """Rename a dump so that only one starting worker processes it."""
    claimed = path.with_name(f"{path.name}.claimed-{socket.gethostname()}-{os.getpid()}")
    try:
        path.rename(claimed)
    except FileNotFoundError:  # another worker was first
        return None
    return claimed


def requeue_rescued(app: Celery) -> int:
    """Put every rescued message back on its queue; returns how many were requeued."""
    folder = rescue_dir()
    if not folder.is_dir():
        return 0
    count = 0
    for path in sorted(folder.glob("*.json")):
        claimed = _claim(path)
        if claimed is None:
            continue
        try:
            messages = json.loads(claimed.read_text())
            if not isinstance(messages, list):
                raise ValueError("not a list of messages")
        except (OSError, ValueError) as exc:
            logger.error("cannot read rescued messages in %s (%s); kept as .bad", path, exc)
            claimed.rename(path.with_suffix(".bad"))
            continue
        try:
            _requeue(app, messages)
        except Exception:
            claimed.rename(path)  # for the next worker that starts
            raise
        claimed.unlink()
        count += len(messages)
    return count


def _requeue(app: Celery, messages: list[dict[str, Any]]) -> None:
    """Push messages back exactly as kombu's Redis transport restores unacked ones."""
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        with channel.conn_or_acquire() as client:
            pipe = client.pipeline()
            for message in messages:
                info = message.get("properties", {}).get("delivery_info", {})
                restore_message(
                    channel, message, info.get("exchange", ""), info.get("routing_key", ""), pipe
                )
            pipe.execute()


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is None:
        return
    try:
        count = requeue_rescued(app)
    except Exception:  # a failed rescue must not stop the worker; files stay for the next
        logger.exception("requeueing rescued messages failed")
        return
    if count:
        logger.warning("requeued %d message(s) rescued from an earlier shutdown", count)
