"""Development parts stay in development: the mailbox (an SMTP sink with a web inbox) is
in a compose profile of its own, and Swarm refuses to deploy without a real SMTP server.

Read as plain YAML and by running swarm.sh with no Docker on the PATH: no Docker here.
The Kubernetes overlays are checked in tests/manifests/test_k8s_manifests.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import ROOT

SWARM_SH = ROOT / "deploy" / "scripts" / "swarm.sh"


def services(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text())["services"])


def test_the_mailbox_runs_only_in_its_compose_profile_behind_a_password() -> None:
    mailbox = services(ROOT / "docker-compose.yml")["mailbox"]
    assert mailbox["profiles"] == ["mailbox"]
    assert "MAILBOX_PASSWORD:?" in mailbox["environment"]["MAILBOX_PASSWORD"]
    assert "MAILBOX_FAULTS" not in mailbox["environment"]


def test_swarm_has_no_mailbox_and_no_default_smtp_server() -> None:
    stack = services(ROOT / "deploy" / "swarm" / "stack.yml")
    assert "mailbox" not in stack
    assert stack["email-worker"]["environment"]["SMTP_HOST"].startswith("${SMTP_HOST:?")


def swarm_up(tmp_path: Path, smtp_host: str | None) -> subprocess.CompletedProcess[str]:
    """`swarm.sh up` with an .env of its own and a PATH without docker.

    Without docker, a broken check can never make this machine a swarm.
    """
    env_file = tmp_path / "env"
    env_file.write_text("" if smtp_host is None else f"SMTP_HOST={smtp_host}\n")
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    for tool in ("dirname", "cat"):
        if not (tools / tool).exists():
            (tools / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    env = {k: v for k, v in os.environ.items() if k != "SMTP_HOST"}
    env.update(ENV_FILE=str(env_file), PATH=str(tools))
    return subprocess.run(
        ["/bin/bash", str(SWARM_SH), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_swarm_up_refuses_the_mailbox_before_touching_the_swarm(tmp_path: Path) -> None:
    for smtp_host in (None, "", "mailbox"):
        done = swarm_up(tmp_path, smtp_host)
        assert done.returncode == 1, done.stderr
        assert "SMTP_HOST is mailbox, the development sink, which Swarm never runs" in done.stderr
        assert "set SMTP_HOST" in done.stderr


def test_swarm_up_goes_on_with_a_real_smtp_server(tmp_path: Path) -> None:
    # Past the check it needs Docker, which this PATH lacks: the refusal is not the reason.
    done = swarm_up(tmp_path, "smtp.example.com")
    assert "SMTP_HOST is mailbox" not in done.stderr
    assert "docker: command not found" in done.stderr


def mail_check(**env: str) -> subprocess.CompletedProcess[str]:
    """`make mail-check` (what `make up` runs before building) with `env`."""
    # COMPOSE set: the Makefile then does not look for Docker's compose plugin.
    return subprocess.run(
        ["make", "--no-print-directory", "mail-check"],
        cwd=ROOT,
        env={**os.environ, "COMPOSE": "none", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_make_up_stops_before_building_a_production_stack_that_mails_the_mailbox() -> None:
    refused = mail_check(CONVEYOR_ENV="production", SMTP_HOST="mailbox")
    assert refused.returncode == 2
    assert "CONVEYOR_ENV is production and SMTP_HOST is mailbox" in refused.stderr
    assert "set SMTP_HOST" in refused.stderr
    assert mail_check(CONVEYOR_ENV="development", SMTP_HOST="mailbox").returncode == 0
    assert mail_check(CONVEYOR_ENV="production", SMTP_HOST="smtp.example.com").returncode == 0
