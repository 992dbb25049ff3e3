"""The stack with REDIS_TLS=true: TLS only, one Redis ACL user per role as without TLS.

`make up` on a compose project of its own, certificates from `make certs` in a temporary
folder. The same work as the plain stack must succeed (tasks, a chord, an e-mail, Flower,
the queue view) with no command refused by Redis (its ACL log stays empty), and each
role's credentials must be refused for another role's work (tests/e2e/redis_roles.py,
which the security suite runs in the plain stack too): a worker started with the
producer's password takes no task.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import Stack, do_the_usual_work, own_stack, run_env
from tests.e2e.redis_roles import NO_RETRY, USERS, Connect, check_roles, password_variable
from tests.helpers import (
    DEVELOPMENT_MAIL,
    task_outcome,
)

pytestmark = pytest.mark.e2e


PROJECT = "conveyor-e2e-tls"
PORTS = {"PRODUCER_PORT": 18100, "FLOWER_PORT": 18155, "MAILBOX_PORT": 18125}
REDIS_PORT = 18379


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


@pytest.fixture(scope="module")
def env(certs: Path) -> dict[str, str]:
    return {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        # What `make` adds when REDIS_TLS is on, for the docker compose calls made here.
        "COMPOSE_FILE": "docker-compose.yml:deploy/compose/tls.yml",
        "REDIS_TLS": "true",
        "CONVEYOR_CERTS_DIR": str(certs),
        "REDIS_TLS_PORT": str(REDIS_PORT),
        **{name: str(port) for name, port in PORTS.items()},
        **DEVELOPMENT_MAIL,
    }


@pytest.fixture(scope="module")
def tls_stack(env: dict[str, str]) -> Iterator[Stack]:
    with own_stack(env, "make", "up") as stack:
        yield stack


def tls_client(certs: Path) -> Connect:
    """Clients of the published TLS port, checking Redis's certificate."""

    def connect(user: str | None, password: str | None) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=REDIS_PORT,
            username=user,
            password=password,
            ssl=True,
            ssl_ca_certs=str(certs / "ca.crt"),
            ssl_cert_reqs="required",
            socket_timeout=5,
            retry=NO_RETRY,
        )

    return connect


def as_role(stack: Stack, certs: Path, role: str) -> redis.Redis:
    """A client of the published TLS port, logged in as one role."""
    return tls_client(certs)(role, stack.secrets[password_variable(role)])


def acl_log(env: dict[str, str]) -> str:
    return run_env(
        env, "docker", "compose", "exec", "-T", "redis", "conveyor-redis", "cli", "ACL", "LOG"
    )


def test_the_whole_stack_works_with_tls_and_no_command_is_refused(
    tls_stack: Stack, env: dict[str, str]
) -> None:
    run_env(
        env,
        "docker",
        "compose",
        "exec",
        "-T",
        "redis",
        "conveyor-redis",
        "cli",
        "ACL",
        "LOG",
        "RESET",
    )
    do_the_usual_work(tls_stack, "tls@example.com")
    log = acl_log(env)
    assert log.strip() == "", f"Redis refused something the stack does:\n{log}"


def test_redis_speaks_only_tls_with_a_certificate_from_our_ca(
    tls_stack: Stack, certs: Path
) -> None:
    plain = redis.Redis(host="127.0.0.1", port=REDIS_PORT, socket_timeout=5)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    untrusted = redis.Redis(
        host="127.0.0.1", port=REDIS_PORT, ssl=True, ssl_cert_reqs="required", socket_timeout=5
    )
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        untrusted.ping()
    assert as_role(tls_stack, certs, "producer").ping() is True


def test_each_role_is_refused_what_belongs_to_another(tls_stack: Stack, certs: Path) -> None:
    passwords = {user: tls_stack.secrets[password_variable(user)] for user in USERS}
    assert check_roles(tls_client(certs), passwords)


@pytest.mark.usefixtures("tls_stack")
def test_redis_reads_its_key_from_a_copy_only_it_can_read(env: dict[str, str], certs: Path) -> None:
    """`make certs` leaves the key 0600 on the host; Redis gets a 0400 copy of its own."""
    assert stat.S_IMODE((certs / "redis.key").stat().st_mode) == 0o600
    listing = run_env(
        env, "docker", "compose", "exec", "-T", "redis", "stat", "-c", "%a %U",
        "/etc/conveyor/tls-key/redis.key",
    )  # fmt: skip
    assert listing.split() == ["400", "redis"], listing


def test_a_worker_with_the_producers_credentials_takes_no_task(
    tls_stack: Stack, env: dict[str, str], certs: Path
) -> None:
    api = tls_stack.api
    run_env(env, "docker", "compose", "stop", "worker")
    try:
        task = api.post("/api/v1/tasks", json={"task": "add", "args": [20, 22]}).json()["id"]
        imposter = run_env(
            env, "timeout", "60", "docker", "compose", "run", "--rm", "--no-deps",
            "-e", "REDIS_USERNAME=producer",
            "-e", f"REDIS_PASSWORD={tls_stack.secrets['REDIS_PRODUCER_PASSWORD']}",
            "worker", check=False, timeout=120,
        )  # fmt: skip
        # redis-py drops the NOPERM code from the message; its exception names it.
        assert re.search(r"NoPermissionError|NOPERM|no permissions", imposter), imposter[-3000:]
        assert api.get(f"/api/v1/tasks/{task}").json()["state"] == "PENDING"
        assert as_role(tls_stack, certs, "producer").llen("default") == 1
    finally:
        run_env(env, "docker", "compose", "start", "worker")
    # The real worker then runs it: nothing was lost to the imposter.
    assert task_outcome(api, task, timeout=120)["result"] == 42
