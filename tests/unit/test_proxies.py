"""X-Forwarded-* is believed from the configured proxies only; by default from no one.

The producer's gunicorn configuration is loaded as gunicorn loads it, and its value is
handed to uvicorn as the UvicornWorker does (uvicorn then wraps the app in its
ProxyHeadersMiddleware): what a request then sees as its client is what is checked.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from gunicorn.app.base import Application  # type: ignore[import-untyped]
from pydantic import ValidationError

from conveyor_core.settings import ProducerSettings
from tests.unit.test_api import KEY

CONF = "conveyor_producer.gunicorn_conf"
CLIENT = "203.0.113.7"  # the address that connects
CLAIMED = "198.51.100.1"  # the address it claims in X-Forwarded-For


class _ConfOnly(Application):  # type: ignore[misc]
    """A gunicorn application that only loads a configuration module."""

    def load_config(self) -> None:
        """Not from the command line (pytest's): only the module, loaded below."""

    def load(self) -> None:
        """Never serves."""


def gunicorn_forwarded_allow_ips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> list[str]:
    """forwarded_allow_ips as gunicorn reads it from the producer's configuration."""
    monkeypatch.setenv("REDIS_PASSWORD", "unit-test-redis-password")
    monkeypatch.setenv("CONVEYOR_API_KEY", KEY)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    if value is None:
        monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    else:
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    monkeypatch.delitem(sys.modules, CONF, raising=False)  # read the environment afresh
    app = _ConfOnly()
    app.load_config_from_module_name_or_filename(f"python:{CONF}")
    monkeypatch.delitem(sys.modules, CONF)
    return list(app.cfg.forwarded_allow_ips)


def client_seen(trusted: list[str]) -> tuple[str, str]:
    """The (client host, scheme) the app sees for a request from CLIENT claiming CLAIMED."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(client=scope["client"][0], scheme=scope["scheme"])

    config = uvicorn.Config(app, forwarded_allow_ips=trusted, lifespan="off")
    config.load()
    scope = {
        "type": "http",
        "scheme": "http",
        "client": (CLIENT, 50000),
        "headers": [(b"x-forwarded-for", CLAIMED.encode()), (b"x-forwarded-proto", b"https")],
    }
    asyncio.run(config.loaded_app(scope, None, None))
    return seen["client"], seen["scheme"]


def test_by_default_no_one_may_claim_another_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    trusted = gunicorn_forwarded_allow_ips(monkeypatch, tmp_path, None)
    assert trusted == []
    assert client_seen(trusted) == (CLIENT, "http")


@pytest.mark.parametrize("value", [CLIENT, "203.0.113.0/24", f"10.0.0.1, {CLIENT}"])
def test_a_configured_proxy_is_believed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    trusted = gunicorn_forwarded_allow_ips(monkeypatch, tmp_path, value)
    assert client_seen(trusted) == (CLAIMED, "https")


def test_another_proxy_is_not(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    trusted = gunicorn_forwarded_allow_ips(monkeypatch, tmp_path, "10.0.0.0/8")
    assert client_seen(trusted) == (CLIENT, "http")


@pytest.mark.parametrize("value", ["proxy.example.com", "10.0.0.1/8", "10.0.0.300"])
def test_a_proxy_that_is_not_an_address_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="FORWARDED_ALLOW_IPS"):
        ProducerSettings(
            redis_password="unit-test-redis-password",
            conveyor_api_key=KEY,
            forwarded_allow_ips=value,
        )
