"""The compose policy (`make audit`): the real configuration passes, and taking away any
control makes it fail, naming the service and the control."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location(
    "compose_policy", ROOT / "deploy/audit/compose_policy.py"
)
assert spec and spec.loader
policy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(policy)

#: The secrets compose insists on (`${VAR:?...}`): placeholders are enough to render.
SECRETS = [
    "CONVEYOR_API_KEY",
    "FLOWER_PASSWORD",
    "REDIS_PASSWORD",
    *(f"REDIS_{role}_PASSWORD" for role in ("PRODUCER", "WORKER", "EMAIL", "RECONCILER", "FLOWER")),
]


def render(*files: str) -> dict[str, Any]:
    """`docker compose config` of `files` (default: docker-compose.yml), as `make audit`."""
    if not shutil.which("docker"):
        pytest.fail("this test renders docker-compose.yml: it needs Docker's compose plugin")
    env = {
        **os.environ,
        **dict.fromkeys(SECRETS, "x"),
        "MAILBOX_PASSWORD": "x",
        # As `make audit` renders it: the development mailbox's profile too.
        "COMPOSE_PROFILES": "mailbox",
    }
    for name in ("CONVEYOR_BIND_ADDRESS", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME"):
        env.pop(name, None)
    options = [arg for path in files for arg in ("-f", path)]
    done = subprocess.run(
        ["docker", "compose", *options, "config", "--format", "json"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return render()


def test_the_stack_passes(config: dict[str, Any]) -> None:
    assert policy.check(config) == []


@pytest.mark.parametrize(
    ("service", "change", "expected"),
    [
        ("worker", lambda s: s.pop("cap_drop"), "worker: cap_drop must include ALL"),
        ("flower", lambda s: s.update(cap_add=["NET_ADMIN"]), "flower: cap_add"),
        ("producer", lambda s: s.pop("security_opt"), "producer: security_opt"),
        ("mailbox", lambda s: s.update(read_only=False), "mailbox: read_only"),
        ("reconciler", lambda s: s.pop("mem_limit"), "reconciler: mem_limit"),
        ("email-worker", lambda s: s.pop("pids_limit"), "email-worker: pids_limit"),
        ("worker", lambda s: s.update(privileged=True), "worker: privileged"),
        ("redis", lambda s: s.update(user="root"), "redis: runs as root"),
        (
            "worker",
            lambda s: s.update(volumes=[{"source": "/var/run/docker.sock", "target": "/s"}]),
            "worker: mounts the Docker socket",
        ),
        (
            "redis",
            lambda s: s.update(ports=[{"target": 6379, "published": "6379", "host_ip": ""}]),
            "redis: publishes a port",
        ),
        ("producer", lambda s: s["ports"][0].update(host_ip="0.0.0.0"), "producer: publishes"),
        (
            "flower",
            lambda s: s["environment"].update(FLOWER_UNAUTHENTICATED_API="true"),
            "flower: sets FLOWER_UNAUTHENTICATED_API",
        ),
        (
            "worker",
            lambda s: s["environment"].update(CONVEYOR_TEST_TASKS="true"),
            "worker: sets CONVEYOR_TEST_TASKS",
        ),
        ("mailbox", lambda s: s.pop("profiles"), "mailbox: development only, yet in no profile"),
        (
            "mailbox",
            lambda s: s["environment"].pop("MAILBOX_PASSWORD"),
            "mailbox: no MAILBOX_PASSWORD",
        ),
        (
            "mailbox",
            lambda s: s["environment"].update(MAILBOX_FAULTS="true"),
            "mailbox: sets MAILBOX_FAULTS",
        ),
        ("redis", lambda s: s.update(command=["redis-server"]), "redis: the start script is"),
        ("redis", lambda s: s.update(entrypoint=["redis-server"]), "redis: the start script is"),
        ("redis", lambda s: s.pop("build"), "redis: not built from deploy/redis"),
        (
            "producer",
            lambda s: s["environment"].pop("REDIS_USERNAME"),
            "producer: logs in to Redis as default",
        ),
        (
            "flower",
            lambda s: s["environment"].update(REDIS_USERNAME="operator"),
            "flower: logs in to Redis as operator",
        ),
        (
            "email-worker",
            lambda s: s["environment"].update(REDIS_USERNAME="worker"),
            "email-worker: shares the Redis user worker with worker",
        ),
        (
            "worker",
            lambda s: s.update(build={"context": ".", "dockerfile": "services/Dockerfile"}),
            "producer, worker: all build conveyor-app:",
        ),
        (
            "email-worker",
            lambda s: s["networks"].update(frontend=None),
            "email-worker: its way out, network frontend, also holds flower",
        ),
    ],
)
def test_removing_a_control_fails_the_policy(
    config: dict[str, Any], service: str, change: Any, expected: str
) -> None:
    broken = copy.deepcopy(config)
    change(broken["services"][service])
    assert any(p.startswith(expected) for p in policy.check(broken)), policy.check(broken)


def test_redis_on_a_network_that_is_not_internal_fails(config: dict[str, Any]) -> None:
    broken = copy.deepcopy(config)
    broken["networks"]["backend"]["internal"] = False
    assert "redis: on network backend, which is not internal" in policy.check(broken)


def test_the_redis_roles_pass_and_each_weakening_fails() -> None:
    roles = policy.REDIS_ROLES.read_text()
    assert policy.acl_problems(roles) == []
    assert "the ACL of operator does not deny flushall" in policy.acl_problems(
        roles.replace(" -flushall", "")
    )
    assert "the ACL user flower has no password" in policy.acl_problems(
        roles.replace("\nflower ", "\nflower nopass ")
    )
    assert "roles.acl defines the default user (it must stay off)" in policy.acl_problems(
        roles + "default on nopass ~* +@all\n"
    )
    script = policy.REDIS_START.read_text()
    assert "the start script does not turn the default user off" in policy.acl_problems(
        roles, script.replace("--user default reset off", "")
    )


def test_redis_with_tls_may_leave_the_internal_network(config: dict[str, Any]) -> None:
    tls = copy.deepcopy(config)
    tls["networks"]["backend"]["internal"] = False
    tls["services"]["redis"]["environment"]["REDIS_TLS"] = "true"
    tls["services"]["redis"]["ports"] = [{"target": 6379, "host_ip": "127.0.0.1"}]
    assert not [p for p in policy.check(tls) if p.startswith("redis:")]


def test_only_the_chaos_overlay_turns_the_mailbox_fault_switch_on(config: dict[str, Any]) -> None:
    # The stack has no fault switch; the chaos suite's overlay turns it on for its 451s,
    # and the policy would refuse that in a deployment.
    assert "MAILBOX_FAULTS" not in config["services"]["mailbox"]["environment"]
    chaos = render("docker-compose.yml", "tests/chaos/compose.chaos.yml")
    assert chaos["services"]["mailbox"]["environment"]["MAILBOX_FAULTS"] == "true"
    assert chaos["services"]["mailbox"]["profiles"] == ["mailbox"]
    assert "mailbox: sets MAILBOX_FAULTS (an open switch that makes e-mail fail)" in policy.check(
        chaos
    )
