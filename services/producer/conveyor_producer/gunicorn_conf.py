"""Gunicorn settings for the producer (`gunicorn -c python:conveyor_producer.gunicorn_conf`)."""

import os
import shutil
from pathlib import Path
from typing import Any

from conveyor_core.logs import configure_logging
from conveyor_core.settings import ProducerSettings

# Complete settings: the entrypoint's preflight has just checked them.
_settings = ProducerSettings()

#: The API's port inside the container (compose, Swarm and Kubernetes map it).
API_PORT = 8000
# The API port is published; the metrics port is reachable on the compose network only.
bind = [f"0.0.0.0:{API_PORT}", f"0.0.0.0:{_settings.metrics_port}"]
workers = _settings.producer_workers
worker_class = "uvicorn_worker.UvicornWorker"
# Sync route handlers run in a thread pool of each worker; Celery's producer pool is
# shared by them, so a request does not open a broker connection of its own.
timeout = 90  # above the longest result long-poll (60 s)
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
# Heartbeat files in memory, not on the (read-only) root filesystem.
worker_tmp_dir = "/dev/shm"  # noqa: S108
# The control socket (`gunicornc`) defaults to ~/.gunicorn, on the read-only root; /tmp is
# the container's tmpfs. Reach it with `make shell` then `gunicornc -s /tmp/gunicorn.ctl`.
control_socket = "/tmp/gunicorn.ctl"  # noqa: S108
# X-Forwarded-For/-Proto are believed from these proxies only (FORWARDED_ALLOW_IPS;
# default none): from anyone else they would let a client pick its own address.
forwarded_allow_ips = _settings.forwarded_allow_ips

# Each gunicorn worker counts its own metrics; prometheus_client's multiprocess mode keeps
# them in files that /metrics adds up. Set before any worker imports prometheus_client.
METRICS_DIR = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/conveyor-metrics"))  # noqa: S108


def on_starting(server: Any) -> None:
    """Log at LOG_LEVEL; start with no metrics files left from an earlier run."""
    # gunicorn's loglevel covers its own and uvicorn's loggers; this, the API's own
    # (the workers are forked from this process and keep it).
    configure_logging(_settings.log_level)
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    METRICS_DIR.mkdir(parents=True)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the totals."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
