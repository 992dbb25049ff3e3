"""A real Redis (container) and real Celery worker processes for the integration tests."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from fastapi.testclient import TestClient

from conveyor_core.settings import ProducerSettings, Settings
from conveyor_producer.api import create_api
from tests.helpers import ROOT, redis_image, wait_for

S = TypeVar("S", bound=Settings)


@dataclass(frozen=True)
class RedisServer:
    """Where the test Redis listens."""

    host: str
    port: int
    password: str

    def settings(
        self,
        broker_db: int = 0,
        result_db: int = 1,
        kind: type[S] = Settings,  # type: ignore[assignment]  # mypy#3737
        **fields: Any,
    ) -> S:
        """Typed settings of a Conveyor process using this Redis (`kind`: its role's)."""
        return kind(
            redis_host=self.host,
            redis_port=self.port,
            redis_password=self.password,
            redis_broker_db=broker_db,
            redis_result_db=result_db,
            **fields,
        )

    def env(self, broker_db: int = 0, result_db: int = 1) -> dict[str, str]:
        """Environment for a Conveyor process using this Redis."""
        return {
            "REDIS_HOST": self.host,
            "REDIS_PORT": str(self.port),
            "REDIS_PASSWORD": self.password,
            "REDIS_BROKER_DB": str(broker_db),
            "REDIS_RESULT_DB": str(result_db),
            "CONVEYOR_ENV": "production",
            # The integration stack runs the test tasks (`crash`, `tally`).
            "CONVEYOR_TEST_TASKS": "true",
        }


@contextmanager
def redis_container(label: str = "") -> Iterator[RedisServer]:
    """A password-protected Redis in a throwaway container on a random local port."""
    if not shutil.which("docker"):
        pytest.fail("integration tests need Docker for their Redis: run them with `make test`")
    password = secrets.token_urlsafe(24)
    name = f"conveyor-itest-redis-{os.getpid()}{label}"
    subprocess.run(
        [
            "docker",
            "run",
            "--detach",
            "--rm",
            "--name",
            name,
            "--publish",
            "127.0.0.1::6379",
            "--user",
            "redis",
            "--env",
            f"REDIS_PASSWORD={password}",
            redis_image(),
            "sh",
            "-c",
            'exec redis-server --requirepass "$REDIS_PASSWORD" --save ""',
        ],
        check=True,
        capture_output=True,
    )
    try:
        mapping = subprocess.run(
            ["docker", "port", name, "6379/tcp"], check=True, capture_output=True, text=True
        ).stdout.split()[0]
        host, _, port = mapping.rpartition(":")
        server = RedisServer(host, int(port), password)
        client = redis.Redis(host=host, port=int(port), password=password)
        wait_for(client.ping, 30, "the test Redis to answer")
        yield server
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's Redis (sixteen databases, shared out among the test modules)."""
    with redis_container() as server:
        yield server


class WorkerProcess:
    """A real `celery worker` process started from the project's venv."""

    def __init__(
        self,
        env: dict[str, str],
        heartbeat: Path,
        log: Path,
        pool: str = "prefork",
        queues: str = "default",
        concurrency: int = 2,
    ) -> None:
        self.heartbeat = heartbeat
        self.log_path = log
        self._log = log.open("wb")
        command = [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "conveyor_worker.main",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--queues",
            queues,
            "--hostname",
            f"itest-{secrets.token_hex(3)}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ]
        full_env = {**os.environ, **env, "WORKER_HEARTBEAT_FILE": str(heartbeat)}
        self.process = subprocess.Popen(
            command, env=full_env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_for(self._ready, 60, f"the worker's heartbeat (log: {log})")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{self.log_path.read_text()[-3000:]}")
        return self.heartbeat.exists()

    def terminate(self, timeout: float = 60) -> int:
        """Warm shutdown (SIGTERM), as Docker does; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._log.close()


class Workers:
    """Starts real worker processes on one Redis, each in a folder of its own."""

    def __init__(self, server: RedisServer, new_folder: Callable[[], Path]) -> None:
        self.server, self.new_folder = server, new_folder
        self.started: list[WorkerProcess] = []

    def start(
        self,
        broker_db: int = 0,
        result_db: int = 1,
        extra_env: dict[str, str] | None = None,
        **options: Any,
    ) -> WorkerProcess:
        """A worker on the given databases, ready (its heartbeat written)."""
        folder = self.new_folder()
        env = {**self.server.env(broker_db, result_db), **(extra_env or {})}
        worker = WorkerProcess(env, folder / "heartbeat", folder / "worker.log", **options)
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        """Warm shutdown of every worker started here."""
        for worker in self.started:
            worker.terminate()


@pytest.fixture(scope="session")
def start_worker(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory):
    """Factory: start a worker on the given Redis databases; all are stopped at the end."""
    workers = Workers(redis_server, lambda: tmp_path_factory.mktemp("worker"))
    yield workers.start
    workers.stop_all()


@pytest.fixture(scope="session")
def worker(start_worker) -> WorkerProcess:
    """The session's worker on databases 0 (broker) and 1 (results)."""
    return start_worker()


API_KEY = "integration-test-api-key-0123456789"


def api_for(server: RedisServer, broker_db: int = 0, result_db: int = 1) -> TestClient:
    """The producer API, in-process, against the test Redis."""
    settings = server.settings(
        broker_db, result_db, ProducerSettings, conveyor_api_key=API_KEY, CONVEYOR_TEST_TASKS=True
    )
    client = TestClient(create_api(settings), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {API_KEY}"
    return client


@pytest.fixture(scope="session")
def api(redis_server: RedisServer) -> TestClient:
    """The producer API on the session worker's databases."""
    return api_for(redis_server)
