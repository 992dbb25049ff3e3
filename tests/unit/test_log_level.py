"""LOG_LEVEL and the worker's settings reach each role's framework as it reads them.

The producer's gunicorn configuration is loaded as gunicorn loads it, Flower's as
Flower (tornado) does, and the worker's `celery worker` arguments are built as
`python -m conveyor_worker` builds them. tests/integration/test_log_level.py runs the
processes themselves.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from tornado.log import define_logging_options
from tornado.options import OptionParser

from conveyor_core.settings import Settings
from conveyor_worker.__main__ import worker_argv
from tests.helpers import ROOT
from tests.unit.test_api import KEY
from tests.unit.test_proxies import CONF, _ConfOnly

FLOWER_CONF = ROOT / "services" / "flower" / "flowerconfig.py"


@pytest.fixture
def root_level() -> Iterator[None]:
    """Put the root logger's level back after a test that configures logging."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def producer_cfg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> _ConfOnly:
    """The producer's gunicorn configuration, loaded with this environment."""
    monkeypatch.setenv("REDIS_PASSWORD", "unit-test-redis-password")
    monkeypatch.setenv("CONVEYOR_API_KEY", KEY)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, CONF, raising=False)  # read the environment afresh
    app = _ConfOnly()
    app.load_config_from_module_name_or_filename(f"python:{CONF}")
    monkeypatch.delitem(sys.modules, CONF)
    return app


@pytest.mark.usefixtures("root_level")
def test_the_producer_logs_at_log_level(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Python's own default is WARNING: DEBUG shows that the setting was applied.
    app = producer_cfg(monkeypatch, tmp_path, LOG_LEVEL="debug", PRODUCER_WORKERS="3")
    assert app.cfg.loglevel == "debug"  # gunicorn's and uvicorn's loggers
    assert app.cfg.workers == 3
    app.cfg.on_starting(None)  # the arbiter's hook, before it forks the API's workers
    assert logging.getLogger("conveyor_producer").getEffectiveLevel() == logging.DEBUG


def test_the_producer_refuses_an_unknown_level(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="log_level"):
        producer_cfg(monkeypatch, tmp_path, LOG_LEVEL="chatty")


@pytest.mark.parametrize("level", ["DEBUG", "WARNING"])
def test_flower_logs_at_log_level(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    """Flower reads its configuration file with tornado's options, `logging` among them."""
    monkeypatch.setenv("REDIS_PASSWORD", "unit-test-redis-password")
    monkeypatch.setenv("FLOWER_PASSWORD", "unit-test-flower-password")
    monkeypatch.setenv("LOG_LEVEL", level)
    options = OptionParser()
    define_logging_options(options)
    options.parse_config_file(str(FLOWER_CONF), final=False)
    assert options.logging == level.lower()


def test_the_worker_starts_from_its_settings() -> None:
    settings = Settings(
        redis_password="unit-test-redis-password",
        log_level="warning",
        worker_name="email",
        worker_queues="email,default",
        worker_pool="threads",
        worker_concurrency=16,
    )
    assert worker_argv(settings, ["--without-gossip"]) == [
        "worker",
        "--loglevel",
        "WARNING",
        "--hostname",
        "email@%h",
        "--queues",
        "email,default",
        "--pool",
        "threads",
        "--concurrency",
        "16",
        "--without-gossip",
    ]


@pytest.mark.parametrize("queues", ["", "email default", "email,", "$(reboot)"])
def test_worker_queues_are_names(queues: str) -> None:
    with pytest.raises(ValidationError, match="worker_queues"):
        Settings(redis_password="unit-test-redis-password", worker_queues=queues)
