"""The start-up check: its view of the Redis server, and the e-mail worker's SMTP server."""

import os
import ssl
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from conveyor_core.preflight import PreflightError, redis_info, redis_problems, settings_problems


def test_an_evicting_redis_without_persistence_is_refused_and_warned_about() -> None:
    problems, warnings = redis_problems({"maxmemory_policy": "allkeys-lru", "aof_enabled": 0})
    assert "maxmemory-policy is 'allkeys-lru'" in problems[0]
    assert "append-only file" in warnings[0]


def test_a_role_that_may_not_read_info_has_no_findings() -> None:
    # Per-role Redis users (REDIS_TLS) other than the workers' get NOPERM for INFO.
    assert redis_problems({}) == ([], [])


def email_worker_env(**overrides: str) -> dict[str, str]:
    """The environment of compose's email-worker, in production, with `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "WORKER_"))}
    return {
        **env,
        "CONVEYOR_ENV": "production",
        "REDIS_PASSWORD": "a-generated-secret-0123456789",
        "WORKER_QUEUES": "email",
        "SMTP_HOST": "mailbox",
        "CONVEYOR_SECRETS_DIR": "/nonexistent",
        **overrides,
    }


def preflight(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m conveyor_core.preflight worker`, as the entrypoint runs it."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor_core.preflight", "worker"],
        env=env,
        capture_output=True,
        text=True,
        # Refused at once; a worker let through would wait up to a minute for Redis.
        timeout=20,
        check=False,
    )


def test_a_worker_with_a_broken_task_package_refuses_to_start_naming_it(tmp_path: Path) -> None:
    (tmp_path / "team_billing_tasks.py").write_text("import no_such_dependency_anywhere\n")
    env = email_worker_env(
        CONVEYOR_ENV="development",
        TASK_PACKAGES="team_billing_tasks",
        PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    )
    done = preflight(env)
    assert done.returncode == 2, done.stderr
    assert (
        "refusing to start the worker: task package team_billing_tasks (TASK_PACKAGES) "
        "failed to import: ModuleNotFoundError: No module named 'no_such_dependency_anywhere'"
    ) in done.stderr


def test_a_production_email_worker_refuses_the_development_mailbox_saying_what_to_set() -> None:
    # Settings are read before Redis is looked for: no Redis is needed to be refused.
    done = preflight(email_worker_env())
    assert done.returncode == 2, done.stderr
    assert "refusing to start the worker: SMTP_HOST is mailbox" in done.stderr
    assert "set SMTP_HOST to your SMTP server" in done.stderr
    assert "CONVEYOR_ENV=development" in done.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        {"CONVEYOR_ENV": "development"},  # the mailbox is what development is for
        {"SMTP_HOST": "smtp.example.com"},  # a real server
        {"WORKER_QUEUES": "default"},  # a worker that sends no e-mail
    ],
)
def test_the_mailbox_refusal_is_only_for_production_email_workers(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str]
) -> None:
    for name, value in email_worker_env(**overrides).items():
        monkeypatch.setenv(name, value)
    settings, problems = settings_problems("worker")
    assert problems == [] and settings is not None


class RefusingRedis:
    """A client whose every call fails the way a wrong ca.crt does."""

    calls = 0

    def info(self) -> dict[str, object]:
        RefusingRedis.calls += 1
        cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
        raise redis.ConnectionError(
            "Error 1 connecting to 172.17.0.1:6380. [SSL: CERTIFICATE_VERIFY_FAILED] "
            "certificate verify failed: self-signed certificate in certificate chain"
        ) from cause

    def close(self) -> None:
        pass


def test_a_certificate_our_ca_does_not_verify_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wrong ca.crt never gets better: no minute of waiting for Redis to start.
    monkeypatch.setattr(redis.Redis, "from_url", lambda *a, **k: RefusingRedis())
    settings = SimpleNamespace(
        broker_url="rediss://worker@172.17.0.1:6380/0",
        redis_socket_timeout=2,
        redis_host="172.17.0.1",
        redis_port=6380,
    )
    with pytest.raises(PreflightError, match="REDIS_TLS_CA_FILE's CA does not verify"):
        redis_info(settings, wait=30)  # type: ignore[arg-type]
    assert RefusingRedis.calls == 1
