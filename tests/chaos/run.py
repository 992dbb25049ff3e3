"""The chaos suite: submit tasks while killing workers, restarting Redis and the producer.

    python -m tests.chaos.run --tasks 20000 --kills 10        (what `make chaos` runs)

It brings up its own stack (project `conveyor-chaos`, the compose file plus
`compose.chaos.yml`: a tally Redis that no fault touches, and the test tasks on, with
short time limits), and submits `tally` tasks over the HTTP API from four submitter
threads (single tasks and batches of 2 to 20, mixed), paced over the whole fault window
(tests/chaos/pacing.py), while a fault thread SIGKILLs a random worker container every
few seconds, scales the workers up and down, restarts Redis once and the producer once,
each fault fired while a submission is in flight and accepted tasks are unfinished. A
failed submission is sent again with the same idempotency key. Then it waits until every
accepted task has run, or until nothing new has run for a while, and reports: accepted,
executed, lost (accepted but never run), duplicated (runs beyond the first), the faults
with the requests in flight and unfinished tasks each met, the client's retries, and
the time from the last fault until the last task ran. The report is printed and written
as JSON to .build/chaos/. `--no-persistence` runs Redis without its append-only file:
the negative control, which must report losses.

Exit status: 1 when a task was lost (the negative control: when none was), when a planned
fault did not happen or met no work, or when no task ran after the last fault.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.chaos.pacing import FaultedRun, Faults, Pacer, Submitters, chunk_sizes
from tests.helpers import DEVELOPMENT_MAIL, ROOT, read_env_file

PROJECT = "conveyor-chaos"
CHAOS_DIR = Path(__file__).resolve().parent
REPORT_DIR = ROOT / ".build" / "chaos"
PORTS = {"PRODUCER_PORT": "28000", "FLOWER_PORT": "25555", "MAILBOX_PORT": "28025"}
#: Limits that bring a SIGKILLed worker's tasks back in about 20 s
#: (MAX_COUNTDOWN + TASK_TIME_LIMIT < VISIBILITY_TIMEOUT still holds).
LIMITS = {
    "VISIBILITY_TIMEOUT": "20",
    "TASK_TIME_LIMIT": "10",
    "TASK_SOFT_TIME_LIMIT": "8",
    "MAX_COUNTDOWN": "5",
    "RESTORE_INTERVAL": "5",
    "RECONCILE_INTERVAL": "5",
    "RECONCILE_GRACE": "10",
    "WORKER_STOP_GRACE_PERIOD": "20s",
}
#: E-mail retries come quickly (the backoff is also held to MAX_COUNTDOWN), and a killed
#: e-mail worker's send lease runs out soon (tests/chaos/emails.py).
EMAIL_LIMITS = {
    "EMAIL_RETRY_BACKOFF": "1",
    "EMAIL_RETRY_BACKOFF_MAX": "5",
    "EMAIL_MAX_RETRIES": "10",
    "EMAIL_SEND_LEASE": "15",
}
TALLY_EXECUTED = "conveyor:tally:executed"
TALLY_RUNS = "conveyor:tally:runs"


@dataclass
class Report(FaultedRun):
    """What a chaos run saw."""

    tasks_requested: int = 0
    persistence: bool = True
    accepted: int = 0
    executed: int = 0
    lost: int = 0
    duplicated_runs: int = 0
    tasks_run_more_than_once: int = 0
    executed_but_not_accepted: int = 0
    submit_seconds: float = 0.0
    total_seconds: float = 0.0
    limits: dict[str, str] = field(default_factory=lambda: dict(LIMITS))
    lost_sample: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Why this run fails: a loss (none, for the negative control), or its faults."""
        problems = self.fault_problems()
        if self.persistence and self.lost:
            problems.append(f"{self.lost} accepted task(s) never ran")
        if not self.persistence and not self.lost:
            problems.append("the negative control lost nothing: the suite cannot see a loss")
        return problems


class Stack:
    """The chaos compose project, driven with `make` and `docker compose`."""

    def __init__(self, persistence: bool = True) -> None:
        self.persistence = persistence
        self.env = {
            **os.environ,
            # The base images `make up` chose (air-gapped stand-ins when no registry).
            **read_env_file(ROOT / ".build" / "bases.env"),
            **PORTS,
            **LIMITS,
            **EMAIL_LIMITS,
            # A development stack with the mailbox (and its fault switch: compose.chaos.yml).
            **DEVELOPMENT_MAIL,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "COMPOSE_FILE": self._files(),
        }

    def _files(self) -> str:
        files = ["docker-compose.yml", str(CHAOS_DIR / "compose.chaos.yml")]
        if not self.persistence:
            files.append(str(CHAOS_DIR / "compose.no-persistence.yml"))
        return os.pathsep.join(files)

    def use_persistence(self, persistence: bool) -> None:
        """Run the running stack's Redis with or without its append-only file.

        Only Redis is recreated (the others reconnect, as after a restart), so the runs of
        one test module share a stack instead of paying for `make up` each.
        """
        if persistence != self.persistence:
            self.persistence = persistence
            self.env["COMPOSE_FILE"] = self._files()
            self.compose("up", "--detach", "--wait", "--no-deps", "--no-build", "redis")

    def run(self, *command: str, check: bool = True, timeout: float = 540) -> str:
        """Run a command in the project folder with the chaos environment."""
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr}")
        return done.stdout

    def compose(self, *args: str, check: bool = True) -> str:
        """`docker compose ARGS` on the chaos project."""
        return self.run("docker", "compose", *args, check=check)

    def up(self, workers: int) -> None:
        """Start from nothing (volumes too), with `workers` worker containers."""
        self.compose("--profile", "mailbox", "down", "--volumes", "--remove-orphans", check=False)
        self.run("make", "up")
        self.scale(workers)

    def scale(self, workers: int, service: str = "worker", *, wait: bool = False) -> None:
        """Run exactly `workers` containers of `service` (`wait`: until they are healthy)."""
        scale = f"{service}={workers}"
        options = ["--wait"] if wait else []
        self.compose(
            "up", "--detach", *options, "--no-build", "--no-recreate", "--scale", scale, service
        )

    def worker_ids(self) -> list[str]:
        """Ids of the running worker containers."""
        return self.compose("ps", "--quiet", "--status", "running", "worker").split()

    def down(self) -> None:
        """Keep every service's log under .build/chaos/, then remove the project and volumes.

        The logs are what explains a loss or an unexpected answer once the stack is gone.
        """
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        path = REPORT_DIR / f"{PROJECT}-{time.strftime('%Y%m%dT%H%M%S')}.log"
        logs = self.compose("logs", "--no-color", "--timestamps", check=False)
        path.write_text(logs)
        print(f"chaos: service logs written to {path.relative_to(ROOT)}", file=sys.stderr)
        self.compose("--profile", "mailbox", "down", "--volumes", "--remove-orphans", check=False)

    def tally(self) -> redis.Redis:
        """A client of the tally Redis, through its loopback port."""
        host, _, port = self.compose("port", "tally", "6379").strip().rpartition(":")
        password = read_env_file(ROOT / ".env")["REDIS_WORKER_PASSWORD"]  # compose.chaos.yml
        return redis.Redis(host=host, port=int(port), password=password)

    def api(self) -> httpx.Client:
        """An authenticated client of the producer API."""
        key = read_env_file(ROOT / ".env")["CONVEYOR_API_KEY"]
        return httpx.Client(
            base_url=f"http://127.0.0.1:{PORTS['PRODUCER_PORT']}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )


def fault_plan(kills: int) -> list[str]:
    """Kills, with a scale-up, a Redis restart, a producer restart and a scale-down among them."""
    plan = ["kill"] * kills
    extras = ["scale:4", "restart:redis", "restart:producer", "scale:2"]
    for position, fault in enumerate(extras, start=1):
        plan.insert(min(len(plan), position * kills // (len(extras) + 1) + position - 1), fault)
    return plan


def injector(stack: Stack, rng: random.Random) -> Callable[[str], str]:
    """The faults of a run: `kill`, `scale:N`, `restart:SERVICE`; each returns a detail."""

    def inject(fault: str) -> str:
        kind, _, arg = fault.partition(":")
        if kind == "kill":
            ids = stack.worker_ids()
            if not ids:
                raise RuntimeError("kill: no running worker")
            victim = rng.choice(ids)
            kill_container(stack, victim)
            return victim[:12]
        if kind == "scale":
            stack.scale(int(arg))
        elif kind == "restart":
            stack.compose("restart", arg)
        return ""

    return inject


def kill_container(stack: Stack, container: str) -> None:
    """SIGKILL a container's main process from the host, as the OOM killer would.

    The whole worker (prefork children die with their PID 1) goes at once and Docker's
    restart policy brings it back (`docker kill` counts as a manual stop: nothing would).
    """
    pid = int(stack.run("docker", "inspect", "--format", "{{.State.Pid}}", container))
    try:
        os.kill(pid, signal.SIGKILL)
    except PermissionError:  # not root on the host: kill, then restart by hand
        stack.run("docker", "kill", "--signal", "KILL", container)
        stack.run("docker", "start", container)


def post_tally(delay: float) -> Callable[[httpx.Client, int, int, str], httpx.Response]:
    """A submission of `size` tally tasks: one task alone, or a batch, under `key`."""

    def post(api: httpx.Client, index: int, size: int, key: str) -> httpx.Response:
        call = {"task": "tally", "kwargs": {"delay": delay}}
        if size == 1:
            return api.post("/api/v1/tasks", json={**call, "idempotency_key": key})
        return api.post(
            "/api/v1/tasks/batch", json={"tasks": [call] * size, "idempotency_key": key}
        )

    return post


def wait_for_drain(
    tally: redis.Redis, accepted: set[str], stall: float
) -> tuple[set[str], float | None]:
    """Poll the tally until every accepted id ran, or nothing new ran for `stall` seconds.

    Returns the executed ids and when (monotonic) the last accepted one was first seen.
    """
    last_progress: float | None = None
    waiting_since = time.monotonic()
    seen = 0
    while True:
        executed = {i.decode() for i in tally.smembers(TALLY_EXECUTED)}  # type: ignore[union-attr]
        done = len(accepted & executed)
        if done > seen:
            seen, last_progress = done, time.monotonic()
        if done == len(accepted) or time.monotonic() - (last_progress or waiting_since) > stall:
            return executed, last_progress
        time.sleep(1)


def run(
    tasks: int,
    kills: int,
    interval: float,
    *,
    persistence: bool = True,
    workers: int = 3,
    delay: float = 0.0,
    stall: float = 120,
    keep: bool = False,
    stack: Stack | None = None,
) -> Report:
    """One chaos run; returns its report (also printed and written as JSON).

    It brings up its own stack and removes it afterwards (unless `keep`), or runs on a
    `stack` already up (left up, Redis switched to `persistence`, `workers` workers).
    """
    report = Report(tasks_requested=tasks, persistence=persistence)
    report.planned_faults = fault_plan(kills)
    started = time.monotonic()
    own = stack is None
    if stack is None:
        stack = Stack(persistence)
        stack.up(workers)
    else:
        stack.use_persistence(persistence)
        stack.scale(workers)
    try:
        tally = stack.tally()
        tally.flushdb()  # counts of an earlier run on the same stack
        pacer = Pacer(tasks, len(report.planned_faults), interval)
        sizes = chunk_sizes(tasks, random.Random(11))
        submitters = Submitters(stack.api, post_tally(delay), sizes, pacer)

        def unfinished() -> int:
            return max(0, submitters.accepted_count() - int(tally.scard(TALLY_EXECUTED)))

        faults = Faults(
            report, injector(stack, random.Random(7)), submitters, pacer, unfinished, interval
        )
        submitters.start()
        faults.start()
        faults.join()
        submitters.join()
        faults.count_retries()
        report.submit_seconds = round(time.monotonic() - started, 1)
        if faults.error is not None:
            raise faults.error
        executed, last_progress = wait_for_drain(tally, set(submitters.accepted), stall)
        tally_up(report, tally, submitters.accepted, executed)
        if last_progress is not None and last_progress > faults.last_fault:
            report.drain_after_last_fault_seconds = round(last_progress - faults.last_fault, 1)
        report.total_seconds = round(time.monotonic() - started, 1)
    finally:
        if own and not keep:
            stack.down()
    write("chaos" if persistence else "chaos-no-persistence", asdict(report))
    return report


def tally_up(report: Report, tally: redis.Redis, accepted: list[str], executed: set[str]) -> None:
    """Fill the report's counts from the tally store."""
    raw_runs: dict[bytes, bytes] = tally.hgetall(TALLY_RUNS)  # type: ignore[assignment]
    runs = {k.decode(): int(v) for k, v in raw_runs.items()}
    wanted = set(accepted)
    lost = sorted(wanted - executed)
    report.accepted = len(wanted)
    report.executed = len(wanted & executed)
    report.lost = len(lost)
    report.lost_sample = lost[:10]
    report.duplicated_runs = sum(n - 1 for i, n in runs.items() if i in wanted and n > 1)
    report.tasks_run_more_than_once = sum(1 for i, n in runs.items() if i in wanted and n > 1)
    report.executed_but_not_accepted = len(executed - wanted)


def write(kind: str, data: dict[str, Any]) -> Path:
    """Print a report and write it as JSON under .build/chaos/<kind>-<time>.json."""
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    path = REPORT_DIR / f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    text = json.dumps(data, indent=2)
    path.write_text(text + "\n")
    print(text)
    print(f"{kind}: report written to {path.relative_to(ROOT)}", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit 1 on a loss (negative control: on none) or a fault that missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--interval", type=float, default=4.0, help="seconds between faults")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each task sleeps")
    parser.add_argument(
        "--stall", type=float, default=120, help="give up after this long without progress"
    )
    parser.add_argument("--no-persistence", action="store_true", help="negative control")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    opts = parser.parse_args(argv)
    report = run(
        opts.tasks,
        opts.kills,
        opts.interval,
        persistence=not opts.no_persistence,
        workers=opts.workers,
        delay=opts.delay,
        stall=opts.stall,
        keep=opts.keep,
    )
    if opts.no_persistence:
        print(f"chaos: negative control lost {report.lost} task(s)", file=sys.stderr)
    for problem in report.problems():
        print(f"chaos: FAILED: {problem}", file=sys.stderr)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
