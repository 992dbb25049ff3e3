"""The ceiling consumer: the least a Python worker on Redis can do per message.

BRPOP one message, decode its JSON, call the task, and (for the latency scenario) PUBLISH
that it ran. No acknowledgement, no result, no events: what a task system could reach if
its bookkeeping cost nothing. `PROCESSES` processes, like the workers it is compared to.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from collections.abc import Callable
from typing import Any

from conveyor_bench.agent import connections as conn

QUEUE = "ceiling:default"
DONE_CHANNEL = "ceiling:done:"
READY_PREFIX = "ceiling:ready:"


def noop() -> None:
    """Do nothing."""


def add(x: float = 0, y: float = 0) -> float:
    """Return x + y."""
    return x + y


TASKS: dict[str, Callable[..., Any]] = {"noop": noop, "add": add}


def consume() -> None:
    """Take messages one at a time, forever."""
    client = conn.client(conn.CEILING_DB)
    client.set(f"{READY_PREFIX}{socket.gethostname()}:{os.getpid()}", 1, ex=3600)
    while True:
        popped = client.brpop([QUEUE], timeout=5)
        if popped is None:
            continue
        message = json.loads(popped[1])
        result = TASKS[message["task"]](*message.get("args", ()))
        if message.get("reply"):
            client.publish(DONE_CHANNEL + message["id"], json.dumps(result))


def main() -> None:
    """Run PROCESSES consumers."""
    count = int(os.environ.get("PROCESSES", "2"))
    workers = [multiprocessing.Process(target=consume, daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    print(f"ceiling: {count} consumer(s) ready", flush=True)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
