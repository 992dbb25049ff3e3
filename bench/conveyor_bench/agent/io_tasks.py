"""Conveyor's worker app with one more task, `bench.net_wait`, for the I/O-bound scenario.

Everything else (acks late, events, results, dead letters) is Conveyor's own worker
configuration: `celery --app conveyor_bench.agent.io_tasks worker --pool P`.
"""

from __future__ import annotations

from conveyor_bench.agent.echo import wait_on_network
from conveyor_worker.main import app

IO_QUEUE = "bench-io"


@app.task(name="bench.net_wait", queue=IO_QUEUE)
def net_wait() -> None:
    """Wait 50 ms on the network: a request the io-echo peer answers late."""
    wait_on_network()


__all__ = ["app", "net_wait"]
