"""The peer baseline: Dramatiq with its Redis broker and its default middleware.

Run as `dramatiq conveyor_bench.agent.dramatiq_tasks --processes P --threads T`.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from conveyor_bench.agent import connections as conn
from conveyor_bench.agent.echo import wait_on_network

dramatiq.set_broker(RedisBroker(url=conn.redis_url(conn.DRAMATIQ_DB)))


@dramatiq.actor(max_retries=0)  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing (the same task as Conveyor's `noop`)."""


@dramatiq.actor(max_retries=0)  # type: ignore[untyped-decorator]
def net_wait() -> None:
    """Wait 50 ms on the network (the I/O-bound scenario)."""
    wait_on_network()
