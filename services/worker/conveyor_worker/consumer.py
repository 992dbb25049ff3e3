"""The worker's consumer: dead letters (see dead_lettering) and task events sent in batches.

Celery buffers task events and, by default, publishes the buffer on the next turn of the
event loop: under load that is one Redis PUBLISH for every event or two. Waiting
`WORKER_EVENT_FLUSH_INTERVAL` seconds first (or until 24 events are buffered) sends the
same events, in the same order, in far fewer messages; Flower shows them that much later.
At shutdown the buffer is published before Celery closes its event dispatcher, which
would otherwise drop it.
"""

from __future__ import annotations

import logging
from typing import Any

from conveyor_core.celery_internals import flush_events
from conveyor_core.settings import get_settings
from conveyor_worker.dead_lettering import DeadLetteringConsumer

logger = logging.getLogger(__name__)


class WorkerConsumer(DeadLetteringConsumer):
    """Conveyor's consumer: dead-letters what cannot run, batches task events."""

    _events_flush_scheduled = False
    # Set by Celery's Consumer (untyped there).
    hub: Any

    def on_send_event_buffered(self) -> Any:
        """An event was buffered: flush the buffer after the interval, once."""
        interval = get_settings().worker_event_flush_interval
        if not self.hub or interval <= 0:
            super().on_send_event_buffered()
            return
        if not self._events_flush_scheduled:
            self._events_flush_scheduled = True
            self.hub.call_later(interval, self._flush_events_later)

    def _flush_events_later(self) -> None:
        self._events_flush_scheduled = False
        flush_events(self)

    def shutdown(self) -> None:
        """Publish buffered task events, then shut down as Celery does.

        Celery's Events step closes the dispatcher without flushing its task buffer
        (celery/worker/consumer/events.py `Events._close`): events still waiting for
        the interval would be lost.
        """
        try:
            flush_events(self)
        except Exception as exc:  # the broker may be gone: shutting down matters more
            logger.warning("could not publish buffered task events at shutdown: %s", exc)
        super().shutdown()
