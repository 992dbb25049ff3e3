"""The README's claims, on the real compose stack: up, tasks, scaling, auth, shutdown, down.

The tests run in file order and share one stack; each leaves it as the next expects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.conftest import PORTS, PROJECT, Stack, compose, containers, make, run
from tests.helpers import ROOT, mailbox_auth, task_outcome, wait_for, wait_until_started

pytestmark = pytest.mark.e2e

#: Countdown of the tasks held across `make stop`: longer than the stop takes.
HELD_SECONDS = 25
SERVICES = {"redis", "producer", "worker", "email-worker", "reconciler", "flower", "mailbox"}


def submit(stack: Stack, path: str, body: dict[str, Any]) -> str:
    response = stack.api.post(path, json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def outcome(stack: Stack, task_id: str) -> dict[str, Any]:
    return task_outcome(stack.api, task_id)


def online_workers(stack: Stack, kind: str = "worker") -> list[str]:
    """Online workers of one service, by node name prefix (worker@, email@)."""
    response = stack.flower.get("/api/workers", params={"status": "true"})
    assert response.status_code == 200, response.text
    return sorted(
        name for name, online in response.json().items() if online and name.startswith(kind + "@")
    )


def wait_for_online_workers(stack: Stack, count: int) -> list[str]:
    """Poll Flower until exactly `count` workers are online; return their names."""

    def probe() -> list[str] | None:
        online = online_workers(stack)
        return online if len(online) == count else None

    return wait_for(probe, 90, f"Flower to list {count} online worker(s)", interval=1)


def test_up_makes_every_service_healthy(stack: Stack) -> None:
    running = {c["Service"]: c for c in containers() if c["State"] == "running"}
    assert set(running) == SERVICES
    health = {name: c.get("Health") for name, c in running.items()}
    assert set(health.values()) == {"healthy"}, health


def test_make_up_again_leaves_the_running_stack_alone(stack: Stack) -> None:
    """A second `make up` with nothing changed recreates and restarts no container.

    Mutation seen failing: `build:` on every Python service (each build got its own
    service label, so the tag moved and every `make up` recreated the other services).
    """
    make("up")  # first, put back what earlier tests changed (Flower's read-only mode)
    before = {c["ID"]: c["Service"] for c in containers() if c["State"] == "running"}
    make("up")
    after = {c["ID"]: c["Service"] for c in containers() if c["State"] == "running"}
    assert after == before


def test_add_through_the_api(stack: Stack) -> None:
    status = outcome(stack, submit(stack, "/api/v1/tasks", {"task": "add", "args": [2, 3]}))
    assert status["state"] == "SUCCESS"
    assert status["result"] == 5


def test_chain_through_the_api(stack: Stack) -> None:
    body = {"steps": [{"task": "add", "args": [2, 2]}, {"task": "mul", "args": [8]}]}
    assert outcome(stack, submit(stack, "/api/v1/workflows/chain", body))["result"] == 32


def test_bad_input_is_a_clear_4xx(stack: Stack) -> None:
    response = stack.api.post("/api/v1/tasks", json={"task": "add", "args": [2, "x"]})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "args[1]"
    assert stack.api.post("/api/v1/tasks", json={"task": "nope"}).status_code == 404


def test_cli_in_the_producer_container(stack: Stack) -> None:
    done = compose("exec", "-T", "producer", "conveyor", "submit", "mul", "6", "7", "--wait", "30")
    assert re.search(r"^result\s+42\s*$", done.stdout, re.M), done.stdout  # the human table
    done = compose(
        "exec", "-T", "producer", "conveyor", "submit", "mul", "6", "7", "--wait", "30", "--json"
    )
    assert json.loads(done.stdout)["result"] == 42


def test_mailbox_receives_over_smtp_on_the_compose_network(stack: Stack) -> None:
    assert stack.mailbox.delete("/api/messages").status_code == 204
    send = (
        "import smtplib; from email.message import EmailMessage; m = EmailMessage(); "
        "m['From'] = 'app@conveyor.test'; m['To'] = 'user@example.com'; "
        "m['Subject'] = 'e2e hello'; m.set_content('body'); "
        "smtplib.SMTP('mailbox', 1025, timeout=10).send_message(m)"
    )
    compose("exec", "-T", "worker", "python", "-c", send)
    messages = stack.mailbox.get("/api/messages").json()["messages"]
    assert [(m["subject"], m["to"]) for m in messages] == [("e2e hello", ["user@example.com"])]
    detail = stack.mailbox.get(f"/api/messages/{messages[0]['id']}").json()
    assert detail["text"].strip() == "body"
    with socket.socket() as sock:  # SMTP itself is not published to the host
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.1", 1025)) != 0


def test_an_email_sent_through_the_api_lands_in_the_mailbox(stack: Stack) -> None:
    assert stack.mailbox.delete("/api/messages").status_code == 204
    body = {
        "to": ["ada@example.com"],
        "template": "password_reset",
        "context": {"name": "Ada", "reset_url": "https://example.com/r/1", "valid_minutes": 30},
        "idempotency_key": f"e2e-{uuid.uuid4()}",
    }
    task_id = submit(stack, "/api/v1/emails", body)
    status = outcome(stack, task_id)
    assert status["state"] == "SUCCESS", status
    assert status["queue"] == "email" and status["worker"].startswith("email@")
    [message] = stack.mailbox.get("/api/messages", params={"to": "ada@example.com"}).json()[
        "messages"
    ]
    assert message["subject"] == "Reset your password"
    assert message["message_id"] == status["result"]["message_id"]
    # The same key again: the first submission's id (200), and no second e-mail.
    again = stack.api.post("/api/v1/emails", json=body)
    assert (again.status_code, again.json()["id"]) == (200, task_id)
    # The CLI, from the producer container, waits until the worker sent it.
    done = compose(
        "exec", "-T", "producer", "conveyor", "email", "--to", "grace@example.com",
        "--subject", "From the CLI", "--text", "hello", "--wait", "30", "--json",
    )  # fmt: skip
    assert json.loads(done.stdout)["result"]["status"] == "sent"
    subjects = [m["subject"] for m in stack.mailbox.get("/api/messages").json()["messages"]]
    assert sorted(subjects) == ["From the CLI", "Reset your password"]


def test_the_inbox_page_lists_a_sent_message_in_a_real_browser(stack: Stack) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "this test needs Chromium: apt-get install chromium (.ci/run does)"
    subject = f"Browser check {uuid.uuid4().hex[:8]}"
    task_id = submit(
        stack, "/api/v1/emails", {"to": ["ada@example.com"], "subject": subject, "text": "hi"}
    )
    assert outcome(stack, task_id)["state"] == "SUCCESS"
    # The inbox asks for basic auth: the login rides in the URL, as a user would type it.
    user, password = (quote(part, safe="") for part in mailbox_auth())
    url = f"http://{user}:{password}@127.0.0.1:{PORTS['MAILBOX_PORT']}/"
    browser = subprocess.run(
        [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--user-data-dir=" + str(ROOT / ".build" / "chromium-profile"), "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # Not run(): a failure would print the command line, password and all.
    assert browser.returncode == 0, browser.stderr[-2000:]
    page = browser.stdout
    # The DOM as the browser built it: the subject is a link in the messages table.
    rows = re.findall(r"<tr>(.*?)</tr>", page.split('id="messages"', 1)[-1], re.S)
    assert any(subject in row and "ada@example.com" in row for row in rows), page[:2000]


def test_scale_the_email_workers_on_their_own(stack: Stack) -> None:
    make("scale", "SERVICE=email-worker", "WORKERS=2")
    running = [
        c for c in containers() if c["Service"] == "email-worker" and c["State"] == "running"
    ]
    assert len(running) == 2
    wait_for(lambda: len(online_workers(stack, "email")) == 2, 90, "two e-mail workers", 1)
    # The CPU workers are untouched: still the one of `make up`.
    cpu = [c for c in containers() if c["Service"] == "worker" and c["State"] == "running"]
    assert len(cpu) == 1, [c["Name"] for c in cpu]
    assert len(online_workers(stack)) == 1
    make("scale", "SERVICE=email-worker", "WORKERS=1")
    wait_for(lambda: len(online_workers(stack, "email")) == 1, 90, "one e-mail worker", 1)


def test_scale_to_three_workers(stack: Stack) -> None:
    make("scale", "WORKERS=3")
    workers = [c for c in containers() if c["Service"] == "worker" and c["State"] == "running"]
    assert len(workers) == 3
    assert len(wait_for_online_workers(stack, 3)) == 3
    # `make inspect` asks every node; the e-mail worker answers too (email@...).
    plain = re.sub(r"\x1b\[[0-9;]*m", "", make("inspect").stdout)  # colours, if any
    pongs = re.findall(r"->\s+(\w+)@\S+: OK\s+pong", plain)
    assert sorted(pongs) == ["email", "worker", "worker", "worker"]
    # Work spreads over the replicas and still completes.
    ids = [submit(stack, "/api/v1/tasks", {"task": "add", "args": [i, i]}) for i in range(12)]
    assert [outcome(stack, task_id)["result"] for task_id in ids] == [2 * i for i in range(12)]


def test_scale_back_to_one_worker(stack: Stack) -> None:
    make("scale", "WORKERS=1")
    workers = [c for c in containers() if c["Service"] == "worker" and c["State"] == "running"]
    assert len(workers) == 1
    assert len(wait_for_online_workers(stack, 1)) == 1


def queue_length(queue: str = "default", *, check: bool = True) -> int | None:
    """The queue's length from `make queues`; None if it failed and `check` is off."""
    done = run("make", "queues", check=check)
    if done.returncode != 0:
        return None
    for line in done.stdout.splitlines():
        words = line.split()
        if words and words[0] == queue:
            return int(words[1])
    raise AssertionError(f"make queues printed no length for queue {queue}")


def revoke(stack: Stack, task_id: str) -> None:
    response = stack.api.delete(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 202, response.text


def never_ran(stack: Stack, task_id: str) -> None:
    """The task is REVOKED and no worker started it or stored a result for it."""
    status = stack.api.get(f"/api/v1/tasks/{task_id}").json()
    assert status["state"] == "REVOKED", status
    assert status.get("started_at") is None and status.get("result") is None, status


def test_purge_and_revoke_while_no_worker_runs_stick(stack: Stack) -> None:
    """Purged tasks and a task revoked while queued with no worker online never run.

    Celery's revokes live in worker memory (celery#4300): with every worker stopped (the
    e-mail worker too: a starting worker copies the revokes of any live one) the revoke
    reached nobody, and the task ran once a worker started. The control task, queued
    behind it, does run: the new worker took the revoked one first and skipped it.
    """
    make("scale", "WORKERS=0")
    compose("stop", "email-worker")
    ids = [submit(stack, "/api/v1/tasks", {"task": "noop"}) for _ in range(5)]
    assert queue_length() == 5
    make("purge", "FORCE=1")
    assert queue_length() == 0
    # Marked REVOKED: a terminal state, so the reconciler will not bring them back.
    assert {stack.api.get(f"/api/v1/tasks/{i}").json()["state"] for i in ids} == {"REVOKED"}
    revoked = submit(stack, "/api/v1/tasks", {"task": "add", "args": [1, 2]})
    revoke(stack, revoked)
    control = submit(stack, "/api/v1/tasks", {"task": "add", "args": [2, 2]})
    make("scale", "WORKERS=1")
    compose("start", "email-worker")
    assert len(wait_for_online_workers(stack, 1)) == 1
    assert outcome(stack, control)["result"] == 4
    wait_for(lambda: queue_length() == 0, 30, "the queue to be empty")
    for task_id in [revoked, *ids]:
        never_ran(stack, task_id)


def test_api_needs_the_key(stack: Stack) -> None:
    base = f"http://127.0.0.1:{PORTS['PRODUCER_PORT']}"
    with httpx.Client(base_url=base, timeout=10) as anonymous:
        assert anonymous.post("/api/v1/tasks", json={"task": "noop"}).status_code == 401
        assert (
            anonymous.get("/api/v1/tasks/00000000-0000-0000-0000-000000000000").status_code == 401
        )
        wrong = {"Authorization": "Bearer not-the-key"}
        assert (
            anonymous.post("/api/v1/tasks", json={"task": "noop"}, headers=wrong).status_code == 401
        )
        assert anonymous.get("/healthz").status_code == 200


# Flower serves /healthcheck and /metrics without auth; /metrics is closed off to the
# compose network by the security hardening issue.
@pytest.mark.parametrize(
    "path", ["/", "/workers", "/tasks", "/api/workers", "/api/tasks", "/api/task/types"]
)
def test_flower_needs_credentials(stack: Stack, path: str) -> None:
    base = f"http://127.0.0.1:{PORTS['FLOWER_PORT']}"
    with httpx.Client(base_url=base, timeout=10) as anonymous:
        assert anonymous.get(path).status_code == 401
        assert anonymous.get(path, auth=("admin", "wrong-password")).status_code == 401
    assert stack.flower.get(path).status_code == 200


def test_redis_is_not_published_and_needs_a_password(stack: Stack) -> None:
    (redis,) = [c for c in containers() if c["Service"] == "redis"]
    assert not redis.get("Publishers") or all(
        not p.get("PublishedPort") for p in redis["Publishers"]
    )
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.1", 6379)) != 0
    denied = compose("exec", "-T", "redis", "redis-cli", "ping", check=False)
    assert "NOAUTH" in denied.stdout + denied.stderr
    allowed = compose("exec", "-T", "redis", "conveyor-redis", "cli", "info", "memory")
    assert "maxmemory_policy:noeviction" in allowed.stdout


def test_services_run_as_non_root(stack: Stack) -> None:
    for service in SERVICES:
        uid = compose("exec", "-T", service, "id", "-u").stdout.strip()
        assert uid != "0", f"{service} runs as root"


def test_dead_letters_through_make(stack: Stack) -> None:
    task_id = submit(stack, "/api/v1/tasks", {"task": "fail", "kwargs": {"message": "e2e dlq"}})
    assert outcome(stack, task_id)["state"] == "FAILURE"
    wait_for(lambda: task_id in make("dlq").stdout, 30, "the failure in make dlq")
    replayed = make("dlq-replay", f"ID={task_id}").stdout
    found = re.search(r"new task ([0-9a-f-]{36})", replayed)
    assert found, replayed
    assert outcome(stack, found.group(1))["state"] == "FAILURE"  # it fails again...
    wait_for(lambda: found.group(1) in make("dlq").stdout, 30, "the replay's failure")
    make("dlq-purge", "FORCE=1")
    assert "0 dead letter(s)" in make("dlq").stdout


def aof_is_settled() -> bool:
    """Redis has written and synced everything to its AOF, and is not rewriting it."""
    info = compose("exec", "-T", "redis", "conveyor-redis", "cli", "info", "persistence").stdout
    fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
    settled = {
        "aof_enabled": "1",
        "loading": "0",
        "aof_rewrite_in_progress": "0",
        "aof_buffer_length": "0",
        "aof_pending_bio_fsync": "0",
    }
    return all(fields.get(name) == value for name, value in settled.items())


def test_redis_restart_or_kill_loses_no_queued_task(stack: Stack) -> None:
    make("scale", "WORKERS=0")
    ids = [submit(stack, "/api/v1/tasks", {"task": "add", "args": [i, 1]}) for i in range(20)]
    make("restart", "SERVICE=redis")
    assert queue_length() == 20  # and the producer answers at once: no stale connection
    # SIGKILL the Redis process itself (as the OOM killer would); Docker restarts it.
    # AOF everysec: wait until nothing is buffered, pending or being rewritten, rather than
    # sleeping past the second.
    wait_for(aof_is_settled, 60, "Redis's append-only file to settle", interval=0.5)
    container = compose("ps", "--quiet", "redis").stdout.strip()
    pid = int(run("docker", "inspect", "--format", "{{.State.Pid}}", container).stdout)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: queue_length(check=False) == 20, 60, "Redis back with the 20 tasks")
    make("scale", "WORKERS=1")
    assert [outcome(stack, i)["result"] for i in ids] == [i + 1 for i in range(20)]


def test_redis_audit_counts_keys_by_kind(stack: Stack) -> None:
    out = make("redis-audit").stdout
    assert re.search(r"^1\s+results\s+\d+", out, re.MULTILINE), out
    assert re.search(r"^\d+ key\(s\)$", out, re.MULTILINE), out


def test_make_kill_spares_redis(stack: Stack) -> None:
    """`make kill` SIGKILLs every service but Redis, which keeps running with its data.

    Mutation seen failing: the old recipe, `$(DC) kill --signal SIGKILL` (Redis exited).
    """
    make("kill")
    states = {c["Service"]: c for c in containers()}
    assert states["redis"]["State"] == "running"
    killed = {name: c["State"] for name, c in states.items() if name != "redis"}
    assert killed and set(killed.values()) == {"exited"}, killed
    assert states["worker"]["ExitCode"] == 137  # SIGKILL, not a warm shutdown
    make("up")


def test_make_stop_lets_the_running_task_finish(stack: Stack) -> None:
    """`make stop` waits for the running task; a revoke made before it outlives it too.

    The revoke case: a task held by a worker for its countdown, revoked, then every
    container stopped and started (a deploy). Celery's in-memory revoke is gone after
    that; the revoked task must still not run, while its control (same countdown) does.
    """
    submitted = time.time()
    task_id = submit(stack, "/api/v1/tasks", {"task": "sleep", "args": [4]})
    held = {"task": "add", "args": [3, 4], "countdown": HELD_SECONDS}
    revoked, control = (submit(stack, "/api/v1/tasks", held) for _ in range(2))
    revoke(stack, revoked)
    wait_until_started(stack.api, task_id)
    first_start = stack.api.get(f"/api/v1/tasks/{task_id}").json()["started_at"]
    make("stop")
    stopped_at = time.time()  # the containers share the host's clock
    stopped = {c["Service"]: c for c in containers()}
    assert all(c["State"] == "exited" for c in stopped.values())
    # Exit code 0: the worker shut down warmly, it was not SIGKILLed after the grace period.
    assert stopped["worker"]["ExitCode"] == 0
    make("up")
    status = outcome(stack, task_id)
    assert status["state"] == "SUCCESS"
    assert status["result"] == 4
    # It ran once and finished before the stop: a task put back on its queue at the stop
    # would also end in SUCCESS, but started again (and finished) after `make up`.
    assert status["started_at"] == first_start, "the task was started a second time"
    finished = datetime.fromisoformat(status["finished_at"]).timestamp()
    assert finished <= stopped_at, f"finished {finished - stopped_at:.1f} s after the stop"
    # The held tasks were still waiting at the stop (else this is not the deploy case).
    assert stopped_at < submitted + HELD_SECONDS
    assert outcome(stack, control)["result"] == 7
    never_ran(stack, revoked)


def mailbox_containers() -> list[str]:
    """Ids of the project's mailbox containers, in any state, by Docker's labels (compose's
    own `ps` may leave out a service whose profile is off)."""
    labels = [
        f"label=com.docker.compose.project={PROJECT}",
        "label=com.docker.compose.service=mailbox",
    ]
    filters = [arg for label in labels for arg in ("--filter", label)]
    return run("docker", "ps", "--all", "--quiet", *filters).stdout.split()


def test_the_mailbox_does_not_run_with_smtp_host_pointed_elsewhere(stack: Stack) -> None:
    """`make up` with a real SMTP server named: the mailbox that ran is removed, none starts.

    The stack stays without its mailbox: the tests after this one need none.
    """
    elsewhere = {"SMTP_HOST": "smtp.example.invalid"}
    assert mailbox_containers()  # it ran until now
    out = make("up", env=elsewhere).stdout
    assert mailbox_containers() == []
    with socket.socket() as sock:  # nothing answers on the inbox's port
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.1", PORTS["MAILBOX_PORT"])) != 0
    assert "Mailbox:" not in out and "E-mail:   sent to smtp.example.invalid" in out
    running = {c["Service"]: c for c in containers() if c["State"] == "running"}
    assert set(running) == SERVICES - {"mailbox"}
    env = run(
        "docker", "inspect", "--format", "{{json .Config.Env}}", running["email-worker"]["ID"]
    ).stdout
    assert "SMTP_HOST=smtp.example.invalid" in json.loads(env)
    # Once more: with no mailbox left to remove, nothing starts one either.
    make("up", env=elsewhere)
    assert mailbox_containers() == []


def test_make_down_removes_the_containers(stack: Stack) -> None:
    make("down")
    assert containers() == []
    assert run("docker", "volume", "inspect", f"{PROJECT}_redis-data").returncode == 0


def test_a_service_still_waiting_for_redis_stops_at_once(stack: Stack) -> None:
    # The entrypoint (PID 1) runs the start-up check in the background and traps SIGTERM:
    # `docker stop` must not have to wait for its grace period and SIGKILL.
    name = f"conveyor-e2e-preflight-{uuid.uuid4().hex[:8]}"
    image = f"conveyor-app:{os.environ.get('CONVEYOR_IMAGE_TAG', 'dev')}"
    password = "a-long-enough-password-for-the-check"
    run(
        "docker",
        "run",
        "--detach",
        "--rm",
        "--name",
        name,
        "--env",
        "REDIS_HOST=nowhere.invalid",
        "--env",
        f"REDIS_PASSWORD={password}",
        image,
        "worker",
    )
    try:
        # Well into the check's wait for Redis: its process runs under the entrypoint.
        wait_for(
            lambda: "conveyor_core.preflight" in run("docker", "top", name, check=False).stdout,
            60,
            "the start-up check to wait for Redis",
            interval=0.2,
        )
        assert (
            run("docker", "inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            == "true"
        )
        started = time.monotonic()
        run("docker", "stop", "--time", "60", name)
        assert time.monotonic() - started < 10
    finally:
        run("docker", "rm", "--force", name, check=False)
