"""LOG_LEVEL reaches each role's real process: the reconciler, Flower and the worker.

Each runs as the entrypoint starts it (`python -m conveyor_reconciler.main`, `celery
flower --conf=flowerconfig.py`, `python -m conveyor_worker`) against a Redis of this
module's own. A role that ignores LOG_LEVEL=WARNING still prints its INFO start-up
line; Flower ignoring DEBUG misses its DEBUG line. The mutation each test was seen
failing with is named in its docstring.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conveyor_reconciler.healthcheck import HEARTBEAT_FILE as RECONCILER_HEARTBEAT

from conveyor_core.celery_app import create_app
from tests.helpers import ROOT, wait_for
from tests.integration.conftest import RedisServer, redis_container

pytestmark = pytest.mark.integration

FLOWER_CONF = ROOT / "services" / "flower" / "flowerconfig.py"


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis for this module alone: the session's sixteen databases are all taken."""
    with redis_container("-loglevel") as server:
        yield server


class RoleProcess:
    """One role's real process, its output in a file, stopped with SIGTERM as Docker does."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        """True while it runs; fails with its output if it ended early."""
        if self.process.poll() is not None:
            raise AssertionError(f"exited early:\n{self.log.read_text()[-3000:]}")
        return True

    def stop(self) -> int:
        """SIGTERM, then its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._out.close()

    def output(self) -> str:
        return self.log.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize(("level", "shown"), [("WARNING", False), ("INFO", True)])
def test_the_reconciler_logs_at_log_level(
    own_redis: RedisServer, tmp_path: Path, level: str, shown: bool
) -> None:
    """Mutation seen failing: main() configuring logging at INFO whatever LOG_LEVEL says."""
    started = time.time()
    reconciler = RoleProcess(
        [sys.executable, "-m", "conveyor_reconciler.main"],
        {**own_redis.env(0, 1), "LOG_LEVEL": level},
        tmp_path / "reconciler.log",
    )
    try:
        # A pass that reached Redis touches the heartbeat: it is up and has logged its start.
        wait_for(
            lambda: (
                reconciler.alive()
                and RECONCILER_HEARTBEAT.exists()
                and RECONCILER_HEARTBEAT.stat().st_mtime >= started
            ),
            30,
            "the reconciler's first pass",
        )
    finally:
        assert reconciler.stop() == 0
    assert ("reconciling every" in reconciler.output()) is shown, reconciler.output()


@pytest.mark.parametrize(
    ("level", "expected", "absent"),
    [("DEBUG", "Settings:", None), ("WARNING", None, "Visit me at")],
)
def test_flower_logs_at_log_level(
    own_redis: RedisServer, tmp_path: Path, level: str, expected: str | None, absent: str | None
) -> None:
    """Mutation seen failing: flowerconfig.py without its `logging` option (tornado's info)."""
    port = free_port()
    flower = RoleProcess(
        [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "conveyor_core.celery_app",
            "flower",
            f"--conf={FLOWER_CONF}",
            f"--port={port}",
            "--address=127.0.0.1",
            f"--db={tmp_path / 'flower'}",
        ],
        {
            **own_redis.env(0, 1),
            "FLOWER_PASSWORD": secrets.token_urlsafe(18),
            "LOG_LEVEL": level,
        },
        tmp_path / "flower.log",
    )
    url = f"http://127.0.0.1:{port}/healthcheck"
    try:
        wait_for(lambda: flower.alive() and urllib.request.urlopen(url, timeout=2), 60, "Flower")
        if expected:
            wait_for(lambda: expected in flower.output(), 10, f"{expected!r} in Flower's log")
    finally:
        flower.stop()
    # The banner is logged before Flower serves: by now it would be in the log.
    assert absent is None or absent not in flower.output(), flower.output()


def test_the_worker_starts_from_its_settings(own_redis: RedisServer, tmp_path: Path) -> None:
    """`python -m conveyor_worker` takes its node name and log level from the settings.

    Mutations seen failing: worker_argv passing "INFO" instead of LOG_LEVEL (the INFO
    "ready." line appears); a fixed "worker@%h" node name (the ping names another node).
    """
    name = f"loglevel-{secrets.token_hex(3)}"
    heartbeat = tmp_path / "heartbeat"
    worker = RoleProcess(
        [sys.executable, "-m", "conveyor_worker", "--without-mingle", "--without-gossip"],
        {
            **own_redis.env(2, 3),
            "LOG_LEVEL": "WARNING",
            "WORKER_NAME": name,
            "WORKER_QUEUES": "default",
            "WORKER_HEARTBEAT_FILE": str(heartbeat),
        },
        tmp_path / "worker.log",
    )
    try:
        wait_for(lambda: worker.alive() and heartbeat.exists(), 60, "the worker's heartbeat")
        replies = create_app(own_redis.settings(2, 3)).control.ping(timeout=2) or []
        assert [node for reply in replies for node in reply] == [f"{name}@{socket.gethostname()}"]
    finally:
        assert worker.stop() == 0  # a warm shutdown, its status passed on by the launcher
    assert " ready." not in worker.output(), worker.output()
