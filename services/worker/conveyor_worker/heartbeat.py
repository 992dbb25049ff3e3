"""A heartbeat file the container healthcheck reads.

Every few seconds a timer in the worker's own event loop checks that the consumer is
connected and that Redis answers a PING, and then touches a file. The healthcheck passes
while the file is fresh: this very worker node's loop is running and its broker is up,
at the cost of a `stat`, where `celery inspect ping` would start a Python process and
a broadcast for every check. The PING goes over a connection of its own: the consumer's
connection is in the middle of an asynchronous BRPOP and must not be used here.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import bootsteps

from conveyor_core.settings import get_settings
from conveyor_worker.healthcheck import HEARTBEAT_FILE

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0


class Heartbeat(bootsteps.StartStopStep):
    """Consumer bootstep that refreshes the heartbeat file while the broker answers."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer: Any = None
        self._client: redis.Redis | None = None

    def start(self, parent: Any) -> None:
        """Beat once now, then every HEARTBEAT_INTERVAL seconds."""
        options = parent.app.conf.broker_transport_options
        self._client = redis.Redis.from_url(
            get_settings().broker_url,
            socket_connect_timeout=options.get("socket_connect_timeout", 2),
            socket_timeout=options.get("socket_timeout", 2),
        )
        self.beat(parent)
        self._timer = parent.timer.call_repeatedly(HEARTBEAT_INTERVAL, self.beat, (parent,))

    def stop(self, parent: Any) -> None:
        """Stop beating and remove the file: a stopping worker is not healthy."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._client is not None:
            self._client.close()
            self._client = None
        HEARTBEAT_FILE.unlink(missing_ok=True)

    def beat(self, parent: Any) -> None:
        """Touch the file if the consumer is connected and Redis answers a PING."""
        if parent.connection is None or not parent.connection.connected:
            logger.warning("heartbeat: consumer is not connected to the broker")
            return
        if self._client is None:
            # Stopped: a timer entry that fired anyway (gevent's timer can, while the
            # consumer restarts) must not touch the file of a stopping worker.
            return
        try:
            self._client.ping()
        except redis.RedisError as exc:
            logger.warning("heartbeat: broker did not answer: %s", exc)
            return
        HEARTBEAT_FILE.touch()
