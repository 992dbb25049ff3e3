"""Load generators: end-to-end latency, API enqueue (wrk and batches), baseline publishing."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio as aioredis

from conveyor_bench.agent import connections as conn
from conveyor_bench.agent.api_client import ConnectionPool
from conveyor_bench.agent.systems import (
    CEILING_QUEUE,
    Conveyor,
    chunks,
    cleanup_conveyor,
    publish_pipelined,
    wait_drained,
)

#: Where `collect` leaves the ids of API-submitted tasks for `settle`.
COLLECTED = Path("/tmp/collected.json")  # noqa: S108


def percentiles(samples: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles of `samples` (milliseconds in, milliseconds out)."""
    if not samples:
        return {f"p{p}": float("nan") for p in points}
    ordered = sorted(samples)
    return {
        f"p{p}": round(ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))], 3)
        for p in points
    }


# ---- end-to-end latency ----------------------------------------------------------


def latency(args: argparse.Namespace) -> dict[str, Any]:
    """`add` at a fixed rate; time from each request's scheduled start to its result."""
    return asyncio.run(_latency(args.system, args.rate, args.seconds))


#: Where each system announces a finished task: database and Pub/Sub pattern.
RESULT_CHANNELS = {
    "conveyor": (conn.CONVEYOR_RESULT_DB, "celery-task-meta-*"),
    "stock-celery": (conn.STOCK_RESULT_DB, "celery-task-meta-*"),
    "ceiling": (conn.CEILING_DB, "ceiling:done:*"),
}


#: Submissions in flight at most: one API connection per sender.
LATENCY_SENDERS = 64


async def _latency(system: str, rate: float, seconds: float) -> dict[str, Any]:
    db, pattern = RESULT_CHANNELS[system]
    arrived: dict[str, float] = {}
    subscriber = aioredis.Redis.from_url(conn.redis_url(db))
    pubsub = subscriber.pubsub()
    await pubsub.psubscribe(pattern)
    listener = asyncio.create_task(_listen(pubsub, arrived, system))
    submit = await _submitter(system)
    scheduled: dict[str, float] = {}
    errors = 0
    count = int(rate * seconds)
    start = time.perf_counter() + 0.2

    async def one(i: int, at: float) -> None:
        nonlocal errors
        try:
            scheduled[await submit(i)] = at
        except Exception:  # a failed submission is counted, not fatal
            errors += 1

    # Open loop with a fixed set of senders: each takes the next scheduled submission,
    # waits for its time and sends it; a late start still counts from the schedule
    # (no coordinated omission), and no pile of waiting tasks grows when the API lags.
    schedule = iter([(i, start + i / rate) for i in range(count)])

    async def sender() -> None:
        for i, at in schedule:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            await one(i, at)

    await asyncio.gather(*(sender() for _ in range(LATENCY_SENDERS)))
    sent_seconds = time.perf_counter() - start
    deadline = time.perf_counter() + 15
    while time.perf_counter() < deadline and any(i not in arrived for i in scheduled):
        await asyncio.sleep(0.05)
    listener.cancel()
    await subscriber.aclose()
    samples = [(arrived[i] - at) * 1000 for i, at in scheduled.items() if i in arrived]
    _cleanup_results(system, list(scheduled))
    return {
        "system": system,
        "requested_rate": rate,
        "achieved_rate": round(len(scheduled) / sent_seconds, 1),
        "tasks": count,
        "errors": errors,
        "missing": sum(1 for i in scheduled if i not in arrived),
        **{f"{k}_ms": v for k, v in percentiles(samples).items()},
    }


async def _listen(pubsub: Any, arrived: dict[str, float], system: str) -> None:
    prefix = "ceiling:done:" if system == "ceiling" else "celery-task-meta-"
    async for message in pubsub.listen():
        if message["type"] != "pmessage":
            continue
        if system != "ceiling" and b'"SUCCESS"' not in message["data"]:
            continue  # STARTED, PROGRESS: not the result yet
        task_id = message["channel"].decode().removeprefix(prefix)
        arrived.setdefault(task_id, time.perf_counter())


async def _submitter(system: str) -> Any:
    """An async callable submitting `add(i, 1)` and returning the task id."""
    if system == "conveyor":
        api = ConnectionPool(conn.API_URL, conn.api_headers(), size=LATENCY_SENDERS)

        async def via_api(i: int) -> str:
            reply = await api.post_json("/api/v1/tasks", {"task": "add", "args": [i, 1]})
            return str(reply["id"])

        return via_api
    if system == "stock-celery":
        import tasks

        async def via_delay(i: int) -> str:
            return str(tasks.add.delay(i, 1).id)

        return via_delay
    client = aioredis.Redis.from_url(conn.redis_url(conn.CEILING_DB))
    counter = iter(range(10**9))

    async def via_lpush(i: int) -> str:
        task_id = f"l{next(counter)}"
        message = {"id": task_id, "task": "add", "args": [i, 1], "reply": True}
        await client.lpush(CEILING_QUEUE, json.dumps(message))
        return task_id

    return via_lpush


def _cleanup_results(system: str, ids: list[str]) -> None:
    if system == "conveyor":
        cleanup_conveyor(conn.client(conn.CONVEYOR_RESULT_DB), ids)
    elif system == "stock-celery":
        results = conn.client(conn.STOCK_RESULT_DB)
        for part in chunks(ids, 5_000):
            results.unlink(*(f"celery-task-meta-{i}" for i in part))


# ---- API enqueue ---------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{{"task": "noop"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def api_single(args: argparse.Namespace) -> dict[str, Any]:
    """POST /api/v1/tasks under `connections` concurrent clients (wrk), `seconds` long."""
    script = Path("/tmp/submit.lua")  # noqa: S108
    key = conn.api_headers()["Authorization"].removeprefix("Bearer ")
    script.write_text(WRK_SCRIPT.format(key=key))
    command = [
        "wrk", "-t2", f"-c{args.connections}", f"-d{round(args.seconds)}s", "--latency",
        "-s", str(script), f"{conn.API_URL}/api/v1/tasks",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "connections": args.connections,
        "requests_per_second": float(_match(r"Requests/sec:\s+([\d.]+)", out)),
        "p50_ms": _wrk_ms(out, "50%"),
        "p99_ms": _wrk_ms(out, "99%"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def _match(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    if not found:
        raise ValueError(f"no {pattern!r} in wrk's output:\n{text}")
    return found.group(1)


def _wrk_ms(out: str, point: str) -> float:
    value, unit = re.search(rf"^\s+{point}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 3)


def api_batch(args: argparse.Namespace) -> dict[str, Any]:
    """POST /api/v1/tasks/batch with `batch` tasks each, two clients, `tasks` in all."""
    requests = max(1, args.tasks // args.batch)
    body = json.dumps({"tasks": [{"task": "noop"}] * args.batch})
    timings: list[float] = []

    def post(client: httpx.Client) -> None:
        started = time.perf_counter()
        reply = client.post("/api/v1/tasks/batch", content=body)
        reply.raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)

    clients = [
        httpx.Client(base_url=conn.API_URL, headers=conn.api_headers(), timeout=120)
        for _ in range(2)
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(post, [clients[i % 2] for i in range(requests)]))
    seconds = time.perf_counter() - started
    return {
        "batch": args.batch,
        "tasks": requests * args.batch,
        "seconds": round(seconds, 3),
        "tasks_per_second": round(requests * args.batch / seconds, 1),
        **{f"request_{k}_ms": v for k, v in percentiles(timings, (50, 99)).items()},
    }


# ---- baselines' own publishing ---------------------------------------------------


def publish(args: argparse.Namespace) -> dict[str, Any]:
    """A baseline's client enqueueing noop: one call at a time (`batch` 1) or pipelined."""
    started = time.perf_counter()
    timings: list[float] = []
    if args.batch > 1:
        _publish_batched(args.system, args.tasks)
    else:
        send = _single_sender(args.system)
        for _ in range(args.tasks):
            began = time.perf_counter()
            send()
            timings.append((time.perf_counter() - began) * 1000)
    seconds = time.perf_counter() - started
    _drop_queue(args.system)
    figures: dict[str, Any] = {
        "system": args.system,
        "tasks": args.tasks,
        "tasks_per_second": round(args.tasks / seconds, 1),
    }
    if timings:
        figures.update({f"{k}_ms": v for k, v in percentiles(timings, (50, 99)).items()})
    return figures


def _single_sender(system: str) -> Any:
    if system == "stock-celery":
        import tasks

        return tasks.noop.delay
    if system == "dramatiq":
        from conveyor_bench.agent import dramatiq_tasks

        return dramatiq_tasks.noop.send
    client = conn.client(conn.CEILING_DB)
    message = json.dumps({"id": "x", "task": "noop"})
    return lambda: client.lpush(CEILING_QUEUE, message)


def _publish_batched(system: str, count: int) -> None:
    if system == "stock-celery":
        import tasks

        publish_pipelined(tasks.app, "tasks.noop", None, count)
        return
    client = conn.client(conn.CEILING_DB)
    message = json.dumps({"id": "x", "task": "noop"})
    for _ in range(0, count, 1_000):
        client.lpush(CEILING_QUEUE, *[message] * 1_000)


def _drop_queue(system: str) -> None:
    """Delete what a publishing run left (no worker of the baseline runs meanwhile)."""
    keys = {
        "stock-celery": (conn.STOCK_BROKER_DB, ["celery"]),
        "dramatiq": (conn.DRAMATIQ_DB, ["dramatiq:default", "dramatiq:default.msgs"]),
        "ceiling": (conn.CEILING_DB, [CEILING_QUEUE]),
    }
    db, names = keys[system]
    conn.client(db).unlink(*names)


# ---- afterwards: let API-submitted tasks run, then delete their traces -------------


def settle(args: argparse.Namespace) -> dict[str, Any]:
    """`--since T`: note the ids submitted since T; without: wait for them, clean up."""
    results = conn.client(conn.CONVEYOR_RESULT_DB)
    if args.since:
        found: list[bytes] = results.zrangebyscore("conveyor:pending", args.since, "+inf")  # type: ignore[assignment]
        ids = [i.decode() for i in found]
        COLLECTED.write_text(json.dumps(ids))
        return {"collected": len(ids)}
    ids = json.loads(COLLECTED.read_text())
    wait_drained(Conveyor(), ids, timeout=args.timeout, poll=0.2)
    cleanup_conveyor(results, ids)
    COLLECTED.unlink()
    return {"settled": len(ids)}


__all__ = ["api_batch", "api_single", "latency", "publish", "redis", "settle"]
