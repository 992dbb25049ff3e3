"""Prometheus metrics of the producer: submissions by task and outcome, request latency.

Under gunicorn every worker process counts on its own; with PROMETHEUS_MULTIPROC_DIR set
(gunicorn_conf does) the numbers are kept in files there and /metrics adds them up.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SUBMISSIONS = Counter(
    "conveyor_submissions_total", "Tasks submitted through the API.", ["task", "outcome"]
)
REQUEST_SECONDS = Histogram(
    "conveyor_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "handler", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def count_submissions(task: str, outcome: str, count: int = 1) -> None:
    """Count submissions of `task` that ended in `outcome` (accepted, unavailable)."""
    SUBMISSIONS.labels(task=task, outcome=outcome).inc(count)


def render() -> tuple[bytes, str]:
    """The metrics in Prometheus text format, summed over gunicorn workers if needed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class LatencyMiddleware:
    """Time every request; label by handler name, never by raw path (bounded labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and record it in the histogram."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            endpoint: Any = scope.get("endpoint")
            handler = getattr(endpoint, "__name__", None) or "unmatched"
            REQUEST_SECONDS.labels(
                method=scope["method"], handler=handler, status=str(status)
            ).observe(time.perf_counter() - started)
