"""The worker's consumer: dead letters (see dead_lettering) and task events sent in batches.

Celery buffers task events and, by default, publishes the buffer on the next turn of the
event loop: under load that is one Redis PUBLISH for every event or two. Waiting
`WORKER_EVENT_FLUSH_INTERVAL` seconds first (or until 24 events are buffered) sends the
same events, in the same order, in far fewer messages; Flower shows them that much later.
"""

from __future__ import annotations

from typing import Any

from conveyor_core.settings import get_settings
from conveyor_worker.dead_lettering import DeadLetteringConsumer


class WorkerConsumer(DeadLetteringConsumer):
    """Conveyor's consumer: dead-letters what cannot run, batches task events."""

    _events_flush_scheduled = False
    # Set by Celery's Consumer (untyped there).
    hub: Any
    _flush_events: Any

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
        self._flush_events()
