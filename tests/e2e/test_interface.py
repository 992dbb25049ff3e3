"""The producer's whole interface on the compose stack: workflows, CLI, batches, metrics,
and what a client sees while Redis is down and after it returns.

Runs before test_stack.py (file order), on the same stack.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PORTS, Stack, compose, make, run
from tests.helpers import task_outcome, wait_for, wait_until_started

pytestmark = pytest.mark.e2e


def finished_workflow(stack: Stack, workflow_id: str) -> dict[str, Any] | None:
    status: dict[str, Any] = stack.api.get(f"/api/v1/workflows/{workflow_id}").json()
    return status if status["state"] in {"SUCCESS", "FAILURE"} else None


def workflow_result(stack: Stack, kind: str, body: dict[str, Any]) -> Any:
    response = stack.api.post(f"/api/v1/workflows/{kind}", json=body)
    assert response.status_code == 202, response.text
    workflow_id = response.json()["workflow_id"]
    status = wait_for(lambda: finished_workflow(stack, workflow_id), 120, f"the {kind}")
    assert status["state"] == "SUCCESS", status
    return status["result"]


def test_workflows_through_the_api(stack: Stack) -> None:
    chain = {"steps": [{"task": "add", "args": [2, 2]}, {"task": "mul", "args": [8]}]}
    assert workflow_result(stack, "chain", chain) == 32
    group = {"steps": [{"task": "add", "args": [i, i]} for i in range(10)]}
    assert workflow_result(stack, "group", group) == [2 * i for i in range(10)]
    chord = {
        "steps": [{"task": "add", "args": [i, i]} for i in range(100)],
        "callback": {"task": "xsum"},
    }
    assert workflow_result(stack, "chord", chord) == 9900


def cli(*args: str, stdin: str | None = None, check: bool = True) -> Any:
    """`conveyor ARGS --json` in the producer container: (exit code, parsed JSON, stderr)."""
    command = ["docker", "compose", "exec", "-T", "producer", "conveyor", *args, "--json"]
    done = run(*command, check=False, stdin=stdin, timeout=300)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, body, done.stderr


def test_workflows_through_the_cli(stack: Stack) -> None:
    done = make("cli", 'ARGS=chain "add 2 2" "mul 8" --wait 60 --json')
    assert json.loads(done.stdout)["result"] == 32
    _, group, _ = cli("group", *[f"add {i} {i}" for i in range(10)], "--wait", "60")
    assert group["result"] == [2 * i for i in range(10)]
    steps = [f"add {i} {i}" for i in range(100)]
    _, chord, _ = cli("chord", *steps, "--callback", "xsum", "--wait", "120")
    assert chord["result"] == 9900


def test_cli_commands(stack: Stack) -> None:
    _, submitted, _ = cli("submit", "add", "2", "y=3", "--wait", "30")
    assert submitted["result"] == 5
    _, status, _ = cli("status", submitted["id"])
    assert status["state"] == "SUCCESS"
    _, waited, _ = cli("wait", submitted["id"], "--timeout", "5")
    assert waited["result"] == 5
    code, failed, _ = cli("submit", "fail", "oops", "--wait", "30", check=False)
    assert code == 1
    assert failed["error"] == {"type": "TaskFailedError", "message": "oops"}
    code, _, err = cli("submit", "nope", check=False)
    assert code == 3
    assert "no task named 'nope'" in err
    _, running, _ = cli("submit", "sleep", "30")
    wait_until_started(stack.api, running["id"])
    _, revoked, _ = cli("revoke", running["id"], "--terminate")
    assert revoked["revoked"] is True
    code, ended, _ = cli("wait", running["id"], "--timeout", "30", check=False)
    assert (code, ended["state"]) == (1, "REVOKED")
    lines = "\n".join(json.dumps({"task": "mul", "args": [i, 3]}) for i in range(20))
    _, batch, _ = cli("batch", "-", "--wait", "60", stdin=lines)
    assert [s["result"] for s in batch] == [3 * i for i in range(20)]
    _, queues, _ = cli("queues")
    assert {q["name"] for q in queues["queues"]} >= {"default"}
    assert queues["queues"][0]["consumers"]
    _, catalog, _ = cli("catalog")
    assert "progress" in {t["name"] for t in catalog["tasks"]}
    _, recent, _ = cli("recent", "--limit", "5")
    assert len(recent["tasks"]) == 5


def test_cli_wait_shows_the_tasks_own_progress(stack: Stack) -> None:
    """`--wait` alone waits (60 s) with a progress bar fed by the task's progress reports.

    The bar is drawn only on a terminal: TTY_COMPATIBLE makes rich take stderr for one.
    """
    command = ["docker", "compose", "exec", "-T", "-e", "TTY_COMPATIBLE=1", "producer"]
    done = run(*command, "conveyor", "submit", "progress", "6", "0.5", "--wait", timeout=120)
    bar, out = (re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text) for text in (done.stderr, done.stdout))
    assert re.search(r"step [1-6] of 6", bar), bar  # the task's own message
    assert re.search(r"\b[1-6]/6\b", bar), bar  # its current of total
    assert re.search(r"^result\s+.*\bsteps\b.*\b6\b", out, re.M), out


def test_batch_of_ten_thousand_in_one_request(stack: Stack) -> None:
    body = {"tasks": [{"task": "noop"}] * 10_000}
    started = time.perf_counter()
    response = stack.api.post("/api/v1/tasks/batch", json=body, timeout=120)
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.text
    ids = response.json()["ids"]
    assert len(set(ids)) == 10_000
    print(f"\nbatch of 10,000 noop accepted in {elapsed:.2f} s")
    # The last one runs too: the whole batch reached the queue.
    last = wait_for(
        lambda: (status := stack.api.get(f"/api/v1/tasks/{ids[-1]}").json())["ready"] and status,
        600,
        "the batch's last task",
        interval=1,
    )
    assert (last["state"], last["task"]) == ("SUCCESS", "noop"), last


def test_metrics_only_inside_the_network(stack: Stack) -> None:
    assert stack.api.get("/metrics").status_code == 404
    fetch = (
        "import urllib.request as u; "
        "print(u.urlopen('http://producer:9100/metrics', timeout=5).read().decode())"
    )
    text = compose("exec", "-T", "worker", "python", "-c", fetch).stdout
    assert 'conveyor_submissions_total{outcome="accepted",task="add"}' in text
    assert "conveyor_http_request_duration_seconds_bucket" in text


def test_schemathesis_finds_no_server_error_or_schema_violation(stack: Stack) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    done = run(
        str(schemathesis),
        "run",
        f"http://127.0.0.1:{PORTS['PRODUCER_PORT']}/openapi.json",
        "--header",
        f"Authorization: Bearer {stack.secrets['CONVEYOR_API_KEY']}",
        "--checks",
        "not_a_server_error,response_schema_conformance,"
        "status_code_conformance,content_type_conformance",
        "--max-examples",
        "25",
        "--seed",
        "1",
        "--request-timeout",
        "70",
        check=False,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_redis_outage_is_a_fast_503_and_the_producer_recovers(stack: Stack) -> None:
    known = stack.api.post("/api/v1/tasks", json={"task": "noop"}).json()["id"]
    compose("stop", "redis")
    try:
        base = f"http://127.0.0.1:{PORTS['PRODUCER_PORT']}"
        headers = stack.api.headers
        probes = [
            ("POST", "/api/v1/tasks", {"task": "add", "args": [1, 2]}),
            ("POST", "/api/v1/tasks/batch", {"tasks": [{"task": "noop"}]}),
            ("POST", "/api/v1/workflows/chain", {"steps": [{"task": "noop"}]}),
            ("GET", f"/api/v1/tasks/{known}", None),
            ("GET", f"/api/v1/tasks/{known}/result?wait=5", None),
            ("GET", f"/api/v1/workflows/{uuid.uuid4()}", None),
            ("GET", "/api/v1/tasks/recent", None),
            ("GET", "/api/v1/queues", None),
            ("DELETE", f"/api/v1/tasks/{known}", None),
            ("GET", "/healthz", None),
        ]
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for method, path, body in probes:
                started = time.perf_counter()
                response = client.request(method, path, json=body)
                elapsed = time.perf_counter() - started
                assert response.status_code == 503, (method, path, response.text)
                assert response.json()["error"]["code"] == "broker_unavailable"
                assert elapsed < 2.5, f"{method} {path} took {elapsed:.2f} s"
    finally:
        compose("start", "redis")
    # wait_for raises if the producer never accepts a task again.
    wait_for(
        lambda: (
            stack.api.post("/api/v1/tasks", json={"task": "add", "args": [20, 22]}).status_code
            == 202
        ),
        60,
        "the producer to accept tasks again",
        interval=0.5,
    )
    make("up")  # every service healthy again before the next tests
    # Each gunicorn worker holds pooled connections that died with Redis; none of them may
    # turn into a 503 now. A fresh TCP connection per request reaches either worker.
    reads = ["/api/v1/queues", "/api/v1/tasks/recent", f"/api/v1/tasks/{known}"]
    codes = [
        stack.api.get(path, headers={"Connection": "close"}).status_code
        for path in reads
        for _ in range(8)
    ]
    assert codes == [200] * len(codes), codes
    task_id = stack.api.post("/api/v1/tasks", json={"task": "add", "args": [20, 22]}).json()["id"]
    done = task_outcome(stack.api, task_id, timeout=60)
    assert (done["state"], done["result"]) == ("SUCCESS", 42), done
