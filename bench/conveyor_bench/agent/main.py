"""The agent's commands; each prints one JSON object (its figures) on its last line.

`python -m conveyor_bench.agent.main COMMAND ...`, run by the host side through
`docker compose exec bench-agent`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from conveyor_bench.agent import connections as conn
from conveyor_bench.agent import load
from conveyor_bench.agent.systems import system, wait_drained


def emit(figures: dict[str, Any]) -> None:
    """Print the command's figures for the host side."""
    print(json.dumps(figures), flush=True)


def ready(args: argparse.Namespace) -> dict[str, Any]:
    """Wait until `expect` consumers of a system are up."""
    count: Callable[[], int] = {
        "conveyor": lambda: _celery_pongs("conveyor_core.celery_app", "worker@"),
        "io": lambda: _celery_pongs("conveyor_core.celery_app", "io@"),
        "stock-celery": lambda: _celery_pongs("tasks", "celery@"),
        "dramatiq": _dramatiq_consumers,
        "ceiling": _ceiling_consumers,
    }[args.system]
    deadline = time.monotonic() + args.timeout
    seen = count()
    while seen < args.expect and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = count()
    if seen < args.expect:
        raise SystemExit(
            f"{args.system}: {seen} of {args.expect} consumers up after {args.timeout}s"
        )
    return {"system": args.system, "consumers": seen}


def _celery_pongs(module: str, prefix: str) -> int:
    app = __import__(module, fromlist=["app"]).app
    # A ping waits out its whole timeout (the number of nodes is unknown, so no `limit`);
    # idle nodes answer within milliseconds, and `ready` asks again until enough did.
    replies = app.control.ping(timeout=0.3) or []
    return sum(1 for reply in replies for name in reply if name.startswith(prefix))


def _dramatiq_consumers() -> int:
    # Each Dramatiq worker process beats in this sorted set (ms since the epoch).
    client = conn.client(conn.DRAMATIQ_DB)
    fresh = (time.time() - 3) * 1000
    return int(client.zcount("dramatiq:__heartbeats__", fresh, "+inf"))


def _ceiling_consumers() -> int:
    client = conn.client(conn.CEILING_DB)
    return sum(1 for _ in client.scan_iter("ceiling:ready:*", count=1000))


def drain(args: argparse.Namespace) -> dict[str, Any]:
    """Fill the queue (workers frozen), then time the drain from the host's start signal.

    Protocol: print {"filled": ...}; read one line from stdin, the time.time() just before
    the host unfroze the workers; poll until every task ran; print the figures.
    """
    target = system(args.system)
    started = time.perf_counter()
    ids = target.fill(args.tasks, args.task)
    emit({"filled": len(ids), "fill_seconds": round(time.perf_counter() - started, 3)})
    line = sys.stdin.readline()
    if not line.strip():
        raise SystemExit("no start signal on stdin")
    unfrozen_at = float(line)
    drained_at = wait_drained(target, ids, timeout=args.timeout)
    seconds = drained_at - unfrozen_at
    target.cleanup(ids)
    return {
        "system": args.system,
        "tasks": len(ids),
        "seconds": round(seconds, 3),
        "tasks_per_second": round(len(ids) / seconds, 1),
    }


def reset(args: argparse.Namespace) -> dict[str, Any]:
    """Forget consumers' readiness marks before a system starts again."""
    client = conn.client(conn.CEILING_DB)
    keys = list(client.scan_iter("ceiling:ready:*", count=1000))
    if keys:
        client.unlink(*keys)
    return {"reset": len(keys)}


COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "ready": ready,
    "drain": drain,
    "reset": reset,
    "latency": load.latency,
    "api-single": load.api_single,
    "api-batch": load.api_batch,
    "publish": load.publish,
    "settle": load.settle,
}


def parser() -> argparse.ArgumentParser:
    """The agent's command line."""
    cli = argparse.ArgumentParser(prog="conveyor_bench.agent.main")
    cli.add_argument("command", choices=sorted(COMMANDS))
    cli.add_argument("--system", default="conveyor")
    cli.add_argument("--task", default="noop")
    cli.add_argument("--tasks", type=int, default=10_000)
    cli.add_argument("--expect", type=int, default=1)
    cli.add_argument("--timeout", type=float, default=600)
    cli.add_argument("--rate", type=float, default=200)
    cli.add_argument("--seconds", type=float, default=10)
    cli.add_argument("--connections", type=int, default=32)
    cli.add_argument("--batch", type=int, default=1_000)
    cli.add_argument("--since", type=float, default=0)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Run one command and print its figures."""
    args = parser().parse_args(argv)
    emit(COMMANDS[args.command](args))


if __name__ == "__main__":
    main()
