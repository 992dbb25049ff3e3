"""`conveyor`: submit tasks and read their state through the producer's HTTP API.

The API URL and key come from CONVEYOR_API_URL (default http://127.0.0.1:8000) and
CONVEYOR_API_KEY, as in `.env`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import httpx

TERMINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED"}


def _value(text: str) -> Any:
    """A command-line argument as JSON when it parses (2, 1.5, [1,2], "x"), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _client() -> httpx.Client:
    url = os.environ.get("CONVEYOR_API_URL", "http://127.0.0.1:8000")
    key = os.environ.get("CONVEYOR_API_KEY", "")
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def _call(client: httpx.Client, method: str, path: str, **kw: Any) -> dict[str, Any]:
    response = client.request(method, path, **kw)
    body: dict[str, Any] = response.json()
    if response.is_error:
        error = body.get("error", {})
        raise SystemExit(f"error {response.status_code}: {error.get('message', body)}")
    return body


def _wait(client: httpx.Client, task_id: str, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        status = _call(client, "GET", f"/api/v1/tasks/{task_id}")
        if status["state"] in TERMINAL_STATES or time.monotonic() >= deadline:
            return status
        time.sleep(0.2)


def _step(text: str) -> dict[str, Any]:
    """'add 2 2' -> {"task": "add", "args": [2, 2]}."""
    name, *args = text.split()
    return {"task": name, "args": [_value(a) for a in args]}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="enqueue a task: conveyor submit add 2 3")
    submit.add_argument("task")
    submit.add_argument("args", nargs="*", type=_value)
    submit.add_argument("--wait", type=float, default=0, help="seconds to wait for the result")
    status = commands.add_parser("status", help="show a task's state and result")
    status.add_argument("id")
    chained = commands.add_parser("chain", help="conveyor chain 'add 2 2' 'mul 8'")
    chained.add_argument("steps", nargs="+", type=_step)
    chained.add_argument("--wait", type=float, default=0)
    opts = parser.parse_args(argv)

    with _client() as client:
        if opts.command == "status":
            body = _call(client, "GET", f"/api/v1/tasks/{opts.id}")
        else:
            if opts.command == "submit":
                payload: dict[str, Any] = {"task": opts.task, "args": opts.args}
                body = _call(client, "POST", "/api/v1/tasks", json=payload)
            else:
                body = _call(client, "POST", "/api/v1/workflows/chain", json={"steps": opts.steps})
            if opts.wait:
                body = _wait(client, body["id"], opts.wait)
    json.dump(body, sys.stdout)
    sys.stdout.write("\n")
    return 1 if body.get("state") == "FAILURE" else 0


if __name__ == "__main__":
    sys.exit(main())
