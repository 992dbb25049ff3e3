"""`make kill` SIGKILLs the services but never Redis.

A SIGKILLed Redis loses its last second of writes, the one loss docs/reliability.md says
nothing covers. The real Makefile runs here with a stand-in for `docker compose` that
records its calls (COMPOSE=...), so no Docker is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

FAKE_COMPOSE = """#!/bin/sh
echo "$*" >> "{log}"
case "$*" in
  *"config --services"*) printf 'redis\\nproducer\\nworker\\nemail-worker\\n' ;;
esac
"""


def test_make_kill_spares_redis(tmp_path: Path) -> None:
    if not shutil.which("make"):
        pytest.fail("this test runs the Makefile: install make")
    log = tmp_path / "calls"
    compose = tmp_path / "compose"
    compose.write_text(FAKE_COMPOSE.format(log=log))
    compose.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in {"COMPOSE_FILE", "MAKEFLAGS"}}
    subprocess.run(
        # -o docker-check: the stand-in needs no Docker daemon.
        ["make", "--no-print-directory", "-o", "docker-check", "kill", f"COMPOSE={compose}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    calls = [line.split() for line in log.read_text().splitlines()]
    # Options before the command (`--profile mailbox`: the mailbox too, if it runs).
    kills = [call[call.index("kill") :] for call in calls if "kill" in call]
    assert kills == [["kill", "--signal", "SIGKILL", "producer", "worker", "email-worker"]]
