"""Settings: secrets are refused when missing or placeholders, limits must fit together."""

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError

from conveyor_core.celery_app import celery_config
from conveyor_core.settings import FlowerSettings, ProducerSettings, Settings

STRONG = "a-generated-secret-0123456789"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "REDIS_PASSWORD",
        "CONVEYOR_API_KEY",
        "FLOWER_PASSWORD",
        "CONVEYOR_ENV",
        "TASK_TIME_LIMIT",
        "VISIBILITY_TIMEOUT",
        "REDIS_HOST",
        "REDIS_USERNAME",
        "REDIS_TLS",
        "REDIS_TLS_CA_FILE",
        "WORKER_POOL",
        "WORKER_CONCURRENCY",
    ):
        monkeypatch.delenv(name, raising=False)


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    monkeypatch.setenv("REDIS_HOST", "broker.internal")
    settings = Settings()
    assert settings.broker_url == f"redis://:{STRONG}@broker.internal:6379/0"
    assert settings.result_backend_url.endswith("/1")


@pytest.mark.parametrize("password", ["", "changeme", "password", "short"])
def test_refuses_weak_redis_password(monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", password)
    with pytest.raises(ValidationError, match="REDIS_PASSWORD"):
        Settings()


def test_missing_secret_is_an_error() -> None:
    with pytest.raises(ValidationError, match="redis_password"):
        Settings()


def test_development_allows_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_ENV", "development")
    monkeypatch.setenv("REDIS_PASSWORD", "changeme")
    assert Settings().redis_password.get_secret_value() == "changeme"


def test_role_secrets_are_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    monkeypatch.setenv("CONVEYOR_API_KEY", "secret")
    with pytest.raises(ValidationError, match="CONVEYOR_API_KEY"):
        ProducerSettings()
    monkeypatch.setenv("FLOWER_PASSWORD", "")
    with pytest.raises(ValidationError, match="FLOWER_PASSWORD"):
        FlowerSettings()


def test_password_with_url_characters_is_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/word:with#odd?chars")
    assert "p%40ss%2Fword%3Awith%23odd%3Fchars@" in Settings().broker_url


def test_time_limit_must_end_before_the_visibility_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    monkeypatch.setenv("TASK_TIME_LIMIT", "4000")
    monkeypatch.setenv("VISIBILITY_TIMEOUT", "3600")
    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT"):
        Settings()


def test_celery_config_is_json_only_and_at_least_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    config = celery_config(Settings())
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    visibility = config["broker_transport_options"]["visibility_timeout"]
    assert visibility > config["task_time_limit"]
    assert config["result_backend_transport_options"]["visibility_timeout"] == visibility
    [router] = config["task_routes"]
    assert router("conveyor.add") == {"queue": "default"}
    assert router("conveyor.send_email") == {"queue": "email"}
    assert router("elsewhere.task") is None


def test_limits_that_would_run_a_task_twice_are_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    with pytest.raises(
        ValidationError,
        match=r"TASK_TIME_LIMIT \(300 s\) must be shorter than "
        r"VISIBILITY_TIMEOUT \(200 s\)",
    ):
        Settings(task_time_limit=300, task_soft_time_limit=200, visibility_timeout=200)
    with pytest.raises(ValidationError, match=r"MAX_COUNTDOWN \+ TASK_TIME_LIMIT"):
        Settings(max_countdown=500, visibility_timeout=600)
    assert Settings().delivery_problems() == []  # the defaults fit


def test_a_revoke_forgotten_before_a_copy_could_run_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    # RESULT_EXPIRES + MAX_COUNTDOWN + VISIBILITY_TIMEOUT = 86400 + 300 + 600
    with pytest.raises(ValidationError, match=r"REVOKE_TTL \(87299 s\) must be at least .*87300 s"):
        Settings(revoke_ttl=87_299)
    assert Settings(revoke_ttl=87_300).revoke_ttl == 87_300


def test_tls_and_a_role_user_make_a_checked_rediss_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("a CA")
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    monkeypatch.setenv("REDIS_USERNAME", "producer")
    monkeypatch.setenv("REDIS_TLS", "true")
    monkeypatch.setenv("REDIS_TLS_CA_FILE", str(ca))
    settings = Settings()
    client = redis.Redis.from_url(settings.broker_url)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("producer", STRONG)
    assert (kwargs["ssl_cert_reqs"], kwargs["ssl_ca_certs"]) == ("required", str(ca))
    assert client.connection_pool.connection_class is redis.SSLConnection
    config = celery_config(settings)
    assert config["broker_url"] == f"rediss://producer:{STRONG}@redis:6379/0"
    assert config["broker_use_ssl"]["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert config["redis_backend_use_ssl"]["ssl_check_hostname"] is True


def test_tls_without_its_ca_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    monkeypatch.setenv("REDIS_TLS", "true")
    monkeypatch.setenv("REDIS_TLS_CA_FILE", "/nonexistent/ca.crt")
    with pytest.raises(ValidationError, match="REDIS_TLS_CA_FILE"):
        Settings()


def test_plain_redis_has_no_tls_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    config = celery_config(Settings())
    assert config["broker_use_ssl"] is None and config["broker_url"].startswith("redis://")


def _settings_in_a_fresh_process(env: dict[str, str], code: str) -> str:
    """Run `code` in a new interpreter that imports the settings with `env` set.

    Settings reads CONVEYOR_SECRETS_DIR when its class is defined (at import), so the
    real `Settings` can only be tested against a secrets folder from a fresh process.
    """
    clean = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


SECRET_NAMES = {"REDIS_PASSWORD", "CONVEYOR_API_KEY", "FLOWER_PASSWORD", "CONVEYOR_ENV"}


def test_secrets_come_from_files_when_the_environment_has_none(tmp_path: Path) -> None:
    (tmp_path / "redis_password").write_text(STRONG + "\n")
    (tmp_path / "conveyor_api_key").write_text("an-api-key-from-a-file-0123456789\n")
    code = (
        "from conveyor_core.settings import ProducerSettings, Settings; "
        "print(Settings().redis_password.get_secret_value()); "
        "print(ProducerSettings().conveyor_api_key.get_secret_value())"
    )
    out = _settings_in_a_fresh_process({"CONVEYOR_SECRETS_DIR": str(tmp_path)}, code)
    assert out.splitlines() == [STRONG, "an-api-key-from-a-file-0123456789"]


def test_the_environment_wins_over_a_secret_file(tmp_path: Path) -> None:
    (tmp_path / "redis_password").write_text(STRONG + "\n")
    env = {"CONVEYOR_SECRETS_DIR": str(tmp_path), "REDIS_PASSWORD": "from-the-environment-0123"}
    code = (
        "from conveyor_core.settings import Settings; "
        "print(Settings().redis_password.get_secret_value())"
    )
    assert _settings_in_a_fresh_process(env, code) == "from-the-environment-0123"


@pytest.mark.parametrize(
    ("pool", "concurrency", "expected"),
    [("prefork", "8", 10), ("threads", "16", 26), ("gevent", "256", 266)],
)
def test_threads_and_greenlets_get_a_broker_connection_each(
    monkeypatch: pytest.MonkeyPatch, pool: str, concurrency: str, expected: int
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", STRONG)
    monkeypatch.setenv("WORKER_POOL", pool)
    monkeypatch.setenv("WORKER_CONCURRENCY", concurrency)
    config = celery_config(Settings())
    assert config["broker_transport_options"]["max_connections"] == expected
